import BifrostRaftCore
import Testing

@testable import BifrostRaft

/// When a node takes a snapshot by entry count: every `snapshotEntries` entries, at a phase of its own, so that
/// the members of a group do not all encode their state at the same moment.
@Suite("Snapshot schedule: staggered by node")
struct SnapshotScheduleTests {
    /// The indexes at which `node` snapshots while applying entries 1...`through` one at a time from `base`.
    static func schedule(node: NodeID, interval: UInt64, from base: UInt64 = 0, through: UInt64) -> [UInt64] {
        var base = base
        var taken: [UInt64] = []
        for applied in (base + 1)...through
        where RaftDriver.snapshotDue(applied: applied, base: base, interval: interval, node: node) {
            taken.append(applied)
            base = applied
        }
        return taken
    }

    @Test("each node snapshots every interval at a phase of its own, and the phases of nodes 1 to 5 are spread out")
    func staggered() {
        let interval: UInt64 = 1_000
        var phases: [UInt64] = []
        for node: NodeID in 1...5 {
            let taken = Self.schedule(node: node, interval: interval, through: 20_000)
            #expect(taken.count >= 19, "node \(node): \(taken)")
            #expect(taken.first.map { $0 >= interval / 2 && $0 <= interval } == true, "node \(node): \(taken)")
            let gaps = zip(taken.dropFirst(), taken).map { $0 - $1 }
            // The first snapshots align the node to its phase; from then on they are exactly an interval apart.
            #expect(gaps.dropFirst().allSatisfy { $0 == interval }, "node \(node): gaps \(gaps)")
            if let last = taken.last { phases.append(last % interval) }
        }
        #expect(Set(phases).count == 5)
        let sorted = phases.sorted()
        let closest = zip(sorted.dropFirst(), sorted).map { $0 - $1 }.min() ?? 0
        #expect(closest >= interval / 10, "phases \(phases)")
    }

    @Test("never sooner than half an interval after the last snapshot, never later than a full one")
    func bounds() {
        for node: NodeID in [1, 2, 3, 7, 1_000_003, .max] {
            for base: UInt64 in [0, 1, 499, 12_345, 99_999] {
                let taken = Self.schedule(node: node, interval: 1_000, from: base, through: base + 5_000)
                var previous = base
                for index in taken {
                    let gap = index - previous
                    #expect(gap >= 500 && gap <= 1_000, "node \(node), base \(base): \(taken)")
                    previous = index
                }
                #expect(base + 5_000 - previous < 1_000)
            }
        }
        #expect(!RaftDriver.snapshotDue(applied: 10, base: 10, interval: 1_000, node: 1))
        #expect(!RaftDriver.snapshotDue(applied: 10, base: 0, interval: 0, node: 1))
        #expect(RaftDriver.snapshotDue(applied: 1, base: 0, interval: 1, node: 1))
    }
}

/// The copy of the state a snapshot encodes must not outlive the encoding: while it lives, every update on the
/// event loop copies instead of writing in place.
@Suite("Snapshot source: the copy is dropped once encoded")
struct SnapshotSourceTests {
    final class Storage: Sendable {}

    /// A state machine whose state is one object, to watch the copy's lifetime through a weak reference.
    struct Holder: RaftStateMachine {
        let storage: Storage
        mutating func apply(
            function: UInt64, argument: [UInt8], context: RaftApplyContext
        ) throws(RaftStateMachineError) -> [UInt8] { [] }
        func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] { [] }
        func snapshot() throws(RaftStateMachineError) -> [UInt8] { [7] }
        mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {}
    }

    @Test("encoding drops the copy; a second call has nothing to encode")
    func dropsTheCopy() throws {
        weak var watched: Storage?
        let source: SnapshotSource = try {
            let storage = Storage()
            watched = storage
            var master = MasterStateMachine()
            try master.register(Holder(storage: storage), id: 5)
            return SnapshotSource(master)
        }()
        #expect(watched != nil)
        let image = try source.encode()
        #expect(image?.isEmpty == false)
        #expect(watched == nil)
        #expect(try source.encode() == nil)
    }
}
