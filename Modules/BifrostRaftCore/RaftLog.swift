/// The log as the core sees it: the shell's stable storage plus unpersisted entries (and an unpersisted snapshot).
struct RaftLog<Storage: RaftLogReader>: Sendable {
    var storage: Storage
    /// A snapshot received from the leader and not yet persisted.
    var unstableSnapshot: Snapshot?
    /// Entries not yet persisted; `unstable[0].index == offset`.
    var unstable: [Entry] = []
    var offset: UInt64
    /// Unstable entries already handed to the shell in a ready batch (not yet acknowledged).
    var unstableInProgress: Int = 0
    var snapshotInProgress = false
    var committed: UInt64
    var applied: UInt64
    /// Committed entries handed to the shell and not yet acknowledged as applied.
    var applying: UInt64

    init(storage: Storage, applied: UInt64) {
        self.storage = storage
        self.offset = storage.lastIndex + 1
        let snapIndex = storage.snapshotMetadata.index
        let commit = min(max(storage.hardState.commit, snapIndex), storage.lastIndex)
        self.committed = commit
        let start = min(max(applied, snapIndex), commit)
        self.applied = start
        self.applying = start
    }

    var firstIndex: UInt64 {
        if let snap = unstableSnapshot { return snap.metadata.index + 1 }
        return storage.firstIndex
    }

    var lastIndex: UInt64 {
        if !unstable.isEmpty { return offset + UInt64(unstable.count) - 1 }
        if let snap = unstableSnapshot { return snap.metadata.index }
        return storage.lastIndex
    }

    /// The last index that is durable and is known to belong to this log (the leader's own acknowledgement).
    var stableLastIndex: UInt64 {
        if unstableSnapshot != nil { return 0 }
        return min(offset - 1, storage.lastIndex)
    }

    var lastTerm: UInt64 { term(at: lastIndex) ?? 0 }

    func term(at index: UInt64) -> UInt64? {
        if let snap = unstableSnapshot, index == snap.metadata.index { return snap.metadata.term }
        if index >= offset {
            let position = index - offset
            return position < UInt64(unstable.count) ? unstable[Int(position)].term : nil
        }
        if unstableSnapshot != nil { return nil }
        guard index >= storage.snapshotMetadata.index, index <= storage.lastIndex else { return nil }
        return storage.term(at: index)
    }

    func matchTerm(_ index: UInt64, _ term: UInt64) -> Bool { self.term(at: index) == term }

    /// Entries in `lo..<hi`, limited by `maxBytes` (at least one). `nil` when `lo` is compacted.
    func entries(from lo: UInt64, to hi: UInt64, maxBytes: Int) -> [Entry]? {
        guard lo >= firstIndex else { return nil }
        let hi = min(hi, lastIndex + 1)
        guard lo < hi else { return [] }
        var out: [Entry] = []
        var bytes = 0
        if lo < offset {
            out = storage.entries(from: lo, to: min(hi, offset), maxBytes: maxBytes)
            guard UInt64(out.count) == min(hi, offset) - lo else { return out }
            for entry in out { bytes += entry.byteSize }
        }
        var index = max(lo, offset)
        while index < hi {
            let entry = unstable[Int(index - offset)]
            if !out.isEmpty && bytes + entry.byteSize > maxBytes { break }
            bytes += entry.byteSize
            out.append(entry)
            index += 1
        }
        return out
    }

    /// Appends entries (replacing any conflicting suffix) to the unstable log.
    mutating func append(_ entries: [Entry]) {
        guard let first = entries.first else { return }
        let after = first.index
        if after == offset + UInt64(unstable.count) {
            unstable.append(contentsOf: entries)
        } else if after <= offset {
            offset = after
            unstable = entries
            unstableInProgress = 0
        } else {
            let keep = Int(after - offset)
            unstable.removeSubrange(keep...)
            unstableInProgress = min(unstableInProgress, keep)
            unstable.append(contentsOf: entries)
        }
    }

    /// Returns the index of the first entry whose term differs from the local log (0: none).
    func findConflict(_ entries: [Entry]) -> UInt64 {
        for entry in entries where !matchTerm(entry.index, entry.term) {
            return entry.index
        }
        return 0
    }

    /// The largest index `<= index` whose term is `<= term` (the fast-backtracking probe point).
    func findConflictByTerm(index: UInt64, term: UInt64) -> (index: UInt64, term: UInt64) {
        var index = min(index, lastIndex)
        while true {
            guard let localTerm = self.term(at: index) else { return (index, 0) }
            if localTerm <= term || index == 0 { return (index, localTerm) }
            index -= 1
        }
    }

    func isUpToDate(lastIndex candidateIndex: UInt64, lastTerm candidateTerm: UInt64) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Marks entries up to `index` (with `term`) as persisted.
    mutating func stableTo(index: UInt64, term: UInt64) {
        guard index >= offset, matchTerm(index, term) else { return }
        let count = Int(index - offset + 1)
        guard count <= unstable.count else { return }
        unstable.removeFirst(count)
        offset = index + 1
        unstableInProgress = max(0, unstableInProgress - count)
    }

    mutating func stableSnapshotTo(_ index: UInt64) {
        if let snap = unstableSnapshot, snap.metadata.index == index {
            unstableSnapshot = nil
        }
        snapshotInProgress = false
    }

    mutating func restore(_ snapshot: Snapshot) {
        unstableSnapshot = snapshot
        unstable = []
        unstableInProgress = 0
        snapshotInProgress = false
        offset = snapshot.metadata.index + 1
        committed = snapshot.metadata.index
    }

    mutating func commitTo(_ index: UInt64) {
        if index > committed {
            committed = min(index, lastIndex)
        }
    }

    /// Committed entries not yet handed to the shell.
    func nextCommittedEntries(maxBytes: Int) -> [Entry] {
        let lo = max(applying + 1, firstIndex)
        guard committed >= lo else { return [] }
        return entries(from: lo, to: committed + 1, maxBytes: maxBytes) ?? []
    }
}
