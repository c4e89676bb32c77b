import BifrostRaftCore
import BifrostTestKit

typealias Core = RaftCore<MemoryRaftStorage>

/// The plain algorithm of the Raft paper: no pre-vote, no check-quorum.
var paperSettings: RaftSettings {
    var settings = RaftSettings()
    settings.preVote = false
    settings.checkQuorum = false
    return settings
}

/// A core whose persisted log has entries with the given terms (index 1, 2, ...).
func makeCore(
    _ id: NodeID,
    voters: [NodeID] = [1, 2, 3],
    terms: [UInt64] = [],
    term: UInt64 = 0,
    commit: UInt64 = 0,
    settings: RaftSettings = paperSettings,
    seed: UInt64 = 1
) -> Core {
    var storage = MemoryRaftStorage(configuration: Configuration(voters: Set(voters)))
    storage.append(
        terms.enumerated().map { Entry(index: UInt64($0.offset + 1), term: $0.element, payload: [UInt8($0.offset)]) })
    storage.hardState = HardState(term: max(term, terms.last ?? 0), vote: noNode, commit: commit)
    return try! Core(id: id, storage: storage, settings: settings, randomSeed: seed)
}

extension RaftCore where Storage == MemoryRaftStorage {
    /// Runs one shell cycle (persist, then hand back the batch) and returns the batch.
    mutating func cycle() -> RaftReady {
        let ready = self.ready()
        if let snapshot = ready.snapshot { storage.applySnapshot(snapshot) }
        storage.append(ready.entries)
        if let hardState = ready.hardState { storage.hardState = hardState }
        advance(ready)
        return ready
    }
}

func message(_ from: NodeID, _ to: NodeID, term: UInt64, _ body: RaftMessage.Body) -> RaftMessage {
    RaftMessage(from: from, to: to, term: term, body: body)
}

func entries(_ terms: [(index: UInt64, term: UInt64)]) -> [Entry] {
    terms.map { Entry(index: $0.index, term: $0.term, payload: [UInt8(truncatingIfNeeded: $0.index)]) }
}

func payloads(_ count: Int, size: Int = 100, tag: UInt8 = 0) -> [[UInt8]] {
    (0..<count).map { [tag, UInt8(truncatingIfNeeded: $0)] + [UInt8](repeating: 7, count: max(0, size - 2)) }
}
