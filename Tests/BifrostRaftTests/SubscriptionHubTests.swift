import Synchronization
import Testing

@testable import BifrostRaft

/// The node's replay buffer of applied events: a ring of the newest events, which watchers resume from.
@Suite("Subscription hub: the replay buffer")
struct SubscriptionHubTests {
    /// Event content that counts how many of its instances are alive.
    final class Tracked: RaftEventContent {
        static let alive = Atomic<Int>(0)
        let index: UInt64

        init(_ index: UInt64) {
            self.index = index
            Self.alive.add(1, ordering: .relaxed)
        }

        deinit { Self.alive.subtract(1, ordering: .relaxed) }

        func pattern(kind: UInt64) -> [UInt8] { [] }
        func payload(kind: UInt64) -> [UInt8] { [UInt8(truncatingIfNeeded: index)] }
    }

    /// One event of kind `index % 2` per entry, for entries `range`.
    static func records(
        _ range: ClosedRange<UInt64>, content: (UInt64) -> any RaftEventContent
    ) -> [RaftRaisedEventRecord] {
        range.map { index in
            RaftRaisedEventRecord(
                stateMachine: 9, index: index, ordinal: 0,
                event: RaftRaisedEvent(kind: index % 2, content: content(index)))
        }
    }

    static func bytes(_ index: UInt64) -> any RaftEventContent {
        struct Bytes: RaftEventContent {
            let index: UInt64
            func pattern(kind: UInt64) -> [UInt8] { [] }
            func payload(kind: UInt64) -> [UInt8] { [UInt8(truncatingIfNeeded: index)] }
        }
        return Bytes(index: index)
    }

    @Test("keeps the newest events, oldest first, however many times the ring wraps")
    func keepsTheNewest() {
        var hub = SubscriptionHub(capacity: 5, appliedAtStart: 0)
        for index in UInt64(1)...23 { hub.record(Self.records(index...index, content: Self.bytes)) }
        #expect(hub.count == 5)
        #expect(hub.events.map(\.position.index) == [19, 20, 21, 22, 23])
        // Several events of one entry, recorded at once, wrap the same way.
        hub.record(Self.records(24...31, content: Self.bytes))
        #expect(hub.events.map(\.position.index) == [27, 28, 29, 30, 31])
        #expect(hub.events.map(\.event.payload) == (27...31).map { [UInt8($0)] })
    }

    @Test("an event is freed as soon as it is evicted, not in a later bulk removal")
    func freesOnEviction() {
        // Only this test makes `Tracked` instances.
        let before = Tracked.alive.load(ordering: .relaxed)
        var hub = SubscriptionHub(capacity: 8, appliedAtStart: 0)
        for index in UInt64(1)...3_000 {
            hub.record(Self.records(index...index) { Tracked($0) })
            let alive = Tracked.alive.load(ordering: .relaxed) - before
            guard alive == min(Int(index), 8) else {
                Issue.record("after recording entry \(index), \(alive) events are alive in a buffer of 8")
                return
            }
        }
        hub.reset(at: 3_000)
        #expect(Tracked.alive.load(ordering: .relaxed) == before)
    }

    @Test("a watcher resumes after a buffered position; one whose events were evicted cannot resume")
    func resumesOrRefuses() {
        var hub = SubscriptionHub(capacity: 4, appliedAtStart: 0)
        hub.record(Self.records(1...10, content: Self.bytes))
        // Entries 7-10 are buffered; the newest evicted events are entry 5 (kind 1) and entry 6 (kind 0).
        let at = { (index: UInt64) in SubscriptionHub.Position(index: index, ordinal: 0) }
        #expect(hub.canResume(stateMachine: 9, kinds: [1], after: at(5)))
        #expect(!hub.canResume(stateMachine: 9, kinds: [1], after: at(4)))
        #expect(!hub.canResume(stateMachine: 9, kinds: [0], after: at(5)))
        #expect(hub.canResume(stateMachine: 9, kinds: [0, 1], after: at(6)))
        #expect(hub.canResume(stateMachine: 8, kinds: [0, 1], after: at(1)))  // nothing of it was evicted
        #expect(!hub.canResume(stateMachine: 8, kinds: [0, 1], after: at(0)))  // before the node started

        let received = Received()
        hub.attach(
            1,
            SubscriptionHub.Watcher(
                subscription: nil, matches: { _, _ in true }, after: at(7),
                deliver: {
                    received.indexes.append($0.index)
                    return true
                },
                end: { _ in }, finish: {}))
        #expect(received.indexes == [8, 9, 10])
        hub.record(Self.records(11...12, content: Self.bytes))
        #expect(received.indexes == [8, 9, 10, 11, 12])
    }

    final class Received: @unchecked Sendable {
        // `@unchecked Sendable`: written only by the hub, on the test's own thread.
        var indexes: [UInt64] = []
    }
}
