import BifrostRaftCore
import Testing

@testable import BifrostRaft

@Suite("A commit-only hard state rides with the next log write")
struct CommitCarryTests {
    typealias State = BifrostRaftCore.HardState

    static func write(_ indexes: ClosedRange<UInt64>, term: UInt64 = 3, state: State? = nil) -> RaftDisk.Write {
        RaftDisk.Write(
            snapshot: nil, entries: indexes.map { Entry(index: $0, term: term, payload: [1]) }, hardState: state)
    }

    @Test("a batch without a hard state stores the commit-only one")
    func noHardState() {
        var writes = [Self.write(5...6), Self.write(7...7)]
        RaftDriver.carry(State(term: 3, vote: 2, commit: 4), into: &writes)
        #expect(writes[0].hardState == nil)
        #expect(writes[1].hardState == State(term: 3, vote: 2, commit: 4))
    }

    @Test("a batch's own hard state keeps its term and vote, and takes the larger commit index")
    func mergedWithTheBatch() {
        var older = [Self.write(5...6, state: State(term: 4, vote: 1, commit: 3)), Self.write(7...7)]
        RaftDriver.carry(State(term: 3, vote: 2, commit: 5), into: &older)
        #expect(older[1].hardState == State(term: 4, vote: 1, commit: 5))

        var newer = [Self.write(5...6), Self.write(7...7, state: State(term: 4, vote: 1, commit: 6))]
        RaftDriver.carry(State(term: 3, vote: 2, commit: 5), into: &newer)
        #expect(newer[1].hardState == State(term: 4, vote: 1, commit: 6))
    }

    @Test("an empty batch is left alone")
    func emptyBatch() {
        var writes: [RaftDisk.Write] = []
        RaftDriver.carry(State(term: 3, vote: 2, commit: 5), into: &writes)
        #expect(writes.isEmpty)
    }
}
