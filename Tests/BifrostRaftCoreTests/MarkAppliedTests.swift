import BifrostRaftCore
import Testing

@Suite("RaftCore.markApplied: committed entries applied before the ready that carried them is advanced")
struct MarkAppliedTests {
    @Test("it counts only entries handed out as committed, and lets a snapshot be taken at them")
    func boundedByHandedOut() {
        var core = makeCore(1, voters: [1], terms: [1, 1, 1], term: 1, commit: 3)
        // Nothing handed out yet: nothing can be marked applied.
        core.markApplied(through: 3)
        #expect(core.appliedIndex == 0)
        #expect(core.snapshotMetadata(at: 3) == nil)

        let ready = core.ready()
        #expect(ready.committedEntries.map(\.index) == [1, 2, 3])
        // Applied before `advance`: never past what was handed out.
        core.markApplied(through: 10)
        #expect(core.appliedIndex == 3)
        #expect(core.snapshotMetadata(at: 3)?.index == 3)
        // `advance` afterwards changes nothing about it.
        core.advance(ready)
        #expect(core.appliedIndex == 3)
    }
}
