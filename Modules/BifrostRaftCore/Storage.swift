/// Read access to the durable (stable) part of the Raft log, which the node shell owns.
///
/// The core keeps unpersisted entries in memory and reads everything else through this protocol. Index
/// conventions: the storage holds a snapshot covering `1...snapshotMetadata.index`, and entries
/// `firstIndex...lastIndex` where `firstIndex == snapshotMetadata.index + 1` (an empty log has
/// `lastIndex == firstIndex - 1`). `term(at: snapshotMetadata.index)` must return the snapshot term.
///
/// Reads are infallible: a shell whose disk fails should stop the node (as etcd does).
public protocol RaftLogReader: Sendable {
    /// The hard state persisted last.
    var hardState: HardState { get }
    /// The metadata of the latest snapshot (index 0 with the bootstrap configuration for a new cluster).
    var snapshotMetadata: SnapshotMetadata { get }
    /// The first index still held as an entry (`snapshotMetadata.index + 1`).
    var firstIndex: UInt64 { get }
    /// The last stored index (`firstIndex - 1` when empty).
    var lastIndex: UInt64 { get }
    /// The term of the entry at `index`, for `index` in `snapshotMetadata.index...lastIndex`; `nil` otherwise.
    func term(at index: UInt64) -> UInt64?
    /// Entries in `lo..<hi` (within `firstIndex...lastIndex + 1`), stopping once `maxBytes` of
    /// ``Entry/byteSize`` is reached; at least one entry is returned when the range is not empty.
    func entries(from lo: UInt64, to hi: UInt64, maxBytes: Int) -> [Entry]
    /// A piece of the latest snapshot's image: up to `maxBytes` bytes at `offset`, and whether it is the last piece.
    func snapshotChunk(offset: Int, maxBytes: Int) -> (data: [UInt8], done: Bool)
}

/// An in-memory ``RaftLogReader`` with the write operations a shell performs. A value type: the simulation keeps
/// a copy as a node's "disk", so only what was written through it survives a crash.
public struct MemoryRaftStorage: RaftLogReader, Hashable {
    /// The persisted hard state.
    public var hardState: HardState
    /// The latest snapshot's metadata.
    public private(set) var snapshotMetadata: SnapshotMetadata
    /// The latest snapshot's image.
    public private(set) var snapshotData: [UInt8]
    /// Stored entries, `firstIndex...lastIndex`.
    public private(set) var storedEntries: [Entry]

    /// Creates storage for a node of a new cluster whose bootstrap configuration is `configuration`
    /// (pass an empty configuration for a node that will join an existing cluster).
    public init(configuration: Configuration) {
        self.hardState = HardState()
        self.snapshotMetadata = SnapshotMetadata(index: 0, term: 0, configuration: configuration)
        self.snapshotData = []
        self.storedEntries = []
    }

    /// The first entry index.
    public var firstIndex: UInt64 { snapshotMetadata.index + 1 }
    /// The last entry index.
    public var lastIndex: UInt64 { snapshotMetadata.index + UInt64(storedEntries.count) }

    /// See ``RaftLogReader/term(at:)``.
    public func term(at index: UInt64) -> UInt64? {
        if index == snapshotMetadata.index { return snapshotMetadata.term }
        guard index > snapshotMetadata.index, index <= lastIndex else { return nil }
        return storedEntries[Int(index - firstIndex)].term
    }

    /// See ``RaftLogReader/entries(from:to:maxBytes:)``.
    public func entries(from lo: UInt64, to hi: UInt64, maxBytes: Int) -> [Entry] {
        let lo = max(lo, firstIndex)
        let hi = min(hi, lastIndex + 1)
        guard lo < hi else { return [] }
        var out: [Entry] = []
        var bytes = 0
        for position in Int(lo - firstIndex)..<Int(hi - firstIndex) {
            let entry = storedEntries[position]
            if !out.isEmpty && bytes + entry.byteSize > maxBytes { break }
            bytes += entry.byteSize
            out.append(entry)
        }
        return out
    }

    /// See ``RaftLogReader/snapshotChunk(offset:maxBytes:)``.
    public func snapshotChunk(offset: Int, maxBytes: Int) -> (data: [UInt8], done: Bool) {
        let start = min(max(offset, 0), snapshotData.count)
        let end = min(start + max(maxBytes, 1), snapshotData.count)
        return (Array(snapshotData[start..<end]), end == snapshotData.count)
    }

    /// Appends entries, first discarding any stored entry at or after the first new index.
    public mutating func append(_ entries: [Entry]) {
        guard let first = entries.first else { return }
        if first.index <= snapshotMetadata.index {
            // Entries covered by the snapshot are already applied everywhere; keep only the tail.
            let tail = entries.filter { $0.index > snapshotMetadata.index }
            append(tail)
            return
        }
        let keep = Int(min(first.index - firstIndex, UInt64(storedEntries.count)))
        storedEntries.removeSubrange(keep...)
        precondition(first.index == lastIndex + 1, "append would leave a gap in the log")
        storedEntries.append(contentsOf: entries)
    }

    /// Installs a snapshot received from the leader: replaces the image and drops every entry it covers
    /// (keeping later entries only when they continue the snapshot's log).
    public mutating func applySnapshot(_ snapshot: Snapshot) {
        let meta = snapshot.metadata
        if term(at: meta.index) == meta.term {
            storedEntries.removeFirst(Int(meta.index - snapshotMetadata.index))
        } else {
            storedEntries.removeAll()
        }
        snapshotMetadata = meta
        snapshotData = snapshot.data
        if hardState.commit < meta.index { hardState.commit = meta.index }
    }

    /// Records a snapshot the local state machine created at `metadata.index` (which must be applied) and
    /// compacts the log up to it.
    public mutating func createSnapshot(_ metadata: SnapshotMetadata, data: [UInt8]) throws(RaftError) {
        guard metadata.index > snapshotMetadata.index, metadata.index <= lastIndex,
            term(at: metadata.index) == metadata.term
        else {
            throw RaftError(code: .snapshotOutOfDate, message: "snapshot at \(metadata.index) is not in the log")
        }
        storedEntries.removeFirst(Int(metadata.index - snapshotMetadata.index))
        snapshotMetadata = metadata
        snapshotData = data
    }
}
