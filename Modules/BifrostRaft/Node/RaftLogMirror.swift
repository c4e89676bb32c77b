import BifrostRaftCore
import BifrostStorage
import Synchronization

/// The core's view of a node's durable log (the ``RaftLogReader`` a ``RaftNode``'s core runs on).
///
/// It holds in memory only what is small or hot:
/// - the hard state and the latest snapshot's metadata;
/// - the term of every entry since the snapshot (8 bytes each);
/// - the newest entries, up to ``RaftNodeConfiguration/logCacheBytes`` of payload: what the node is about to apply
///   and what up-to-date followers are about to receive.
///
/// Older entries (for a follower that fell behind, or a replay after a restart) are read back from the
/// ``RaftLogStore``, and snapshot chunks for a follower from the snapshot file. The snapshot image and the log
/// since it are therefore not kept in memory twice, as they were with a full in-memory mirror.
///
/// The node changes this value only after the disk has written what it describes (entries, hard state,
/// snapshot), and the disk deletes log entries only after this value stopped listing them, so every entry
/// listed here can be read back. A read that fails anyway (a disk error or corruption) is recorded in
/// ``failure``; the node halts the group when it sees one.
struct RaftLogMirror: RaftLogReader {
    var hardState: BifrostRaftCore.HardState
    private(set) var snapshotMetadata: BifrostRaftCore.SnapshotMetadata
    /// The latest snapshot's file, whose raw bytes are the image followers receive; `nil` before the first one.
    private(set) var snapshotFile: RawSnapshotFile?
    /// `terms[i]` is the term of entry `firstIndex + i`.
    private var terms: [UInt64] = []
    /// The newest entries, from `cache[cacheHead]` (index ``cacheStart``) to the last index.
    private var cache: [Entry] = []
    private var cacheHead = 0
    /// Payload bytes of the entries held in memory.
    private(set) var cachedPayloadBytes = 0
    private let cacheLimit: Int
    private let store: RaftLogStore
    private let failures: ReadFailures

    /// A mirror of an empty log whose snapshot (or bootstrap configuration) is `metadata`.
    init(
        store: RaftLogStore, metadata: BifrostRaftCore.SnapshotMetadata, snapshotFile: RawSnapshotFile?,
        cacheBytes: Int
    ) {
        self.hardState = BifrostRaftCore.HardState()
        self.snapshotMetadata = metadata
        self.snapshotFile = snapshotFile
        self.store = store
        self.cacheLimit = max(cacheBytes, 0)
        self.failures = ReadFailures()
    }

    var firstIndex: UInt64 { snapshotMetadata.index + 1 }
    var lastIndex: UInt64 { snapshotMetadata.index + UInt64(terms.count) }
    /// The first index held in memory (`lastIndex + 1` when none is).
    var cacheStart: UInt64 { lastIndex + 1 - UInt64(cache.count - cacheHead) }
    /// The first read that failed, if any: the group must stop.
    var failure: String? { failures.first }

    func term(at index: UInt64) -> UInt64? {
        if index == snapshotMetadata.index { return snapshotMetadata.term }
        guard index > snapshotMetadata.index, index <= lastIndex else { return nil }
        return terms[Int(index - firstIndex)]
    }

    func entries(from lo: UInt64, to hi: UInt64, maxBytes: Int) -> [Entry] {
        let lo = max(lo, firstIndex)
        let hi = min(hi, lastIndex + 1)
        guard lo < hi else { return [] }
        var out: [Entry] = []
        var bytes = 0
        let start = cacheStart
        if lo < start {
            // The store counts bytes its own way (at least one entry per read): read until this budget is spent.
            let end = min(hi, start)
            var next = lo
            do {
                while next < end {
                    for stored in try store.entries(in: next..<end, maxBytes: max(maxBytes - bytes, 1)) {
                        let entry = try RaftDisk.decode(stored, group: store.groupID)
                        if !out.isEmpty && bytes + entry.byteSize > maxBytes { return out }
                        bytes += entry.byteSize
                        out.append(entry)
                        next += 1
                    }
                }
            } catch {
                failures.record("reading entries \(lo)..<\(end) back from the log failed: \(error)")
                return []
            }
        }
        var index = max(lo, start)
        while index < hi {
            let entry = cache[cacheHead + Int(index - start)]
            if !out.isEmpty && bytes + entry.byteSize > maxBytes { break }
            bytes += entry.byteSize
            out.append(entry)
            index += 1
        }
        return out
    }

    func snapshotChunk(offset: Int, maxBytes: Int) -> (data: [UInt8], done: Bool) {
        guard let file = snapshotFile else { return ([], true) }
        do {
            let data = try file.readRawChunk(offset: UInt64(max(offset, 0)), maxBytes: max(maxBytes, 1))
            return (data, UInt64(max(offset, 0) + data.count) >= file.size)
        } catch {
            failures.record("reading snapshot \(snapshotMetadata.index) for a follower failed: \(error)")
            return ([], false)
        }
    }

    // MARK: Changes (each after the disk wrote it)

    /// Appends durable entries, first dropping any entry at or after the first new index.
    mutating func append(_ entries: [Entry]) {
        guard var first = entries.first else { return }
        var entries = entries[...]
        if first.index <= snapshotMetadata.index {
            // Entries covered by the snapshot are applied everywhere: keep only the tail.
            entries = entries.drop { $0.index <= snapshotMetadata.index }
            guard let next = entries.first else { return }
            first = next
        }
        precondition(first.index <= lastIndex + 1, "append would leave a gap in the log")
        truncate(from: first.index)
        for entry in entries {
            terms.append(entry.term)
            cache.append(entry)
            cachedPayloadBytes += entry.payload.count
        }
        evict()
    }

    /// Installs a snapshot received from the leader (already saved as `file`, and the log reset to it): drops every
    /// entry it covers, keeping later entries only when they continue the snapshot's log.
    mutating func applySnapshot(_ metadata: BifrostRaftCore.SnapshotMetadata, file: RawSnapshotFile) {
        if term(at: metadata.index) == metadata.term {
            dropPrefix(through: metadata.index)
        } else {
            terms.removeAll()
            clearCache()
        }
        snapshotMetadata = metadata
        snapshotFile = file
        if hardState.commit < metadata.index { hardState.commit = metadata.index }
    }

    /// Records a snapshot the node saved at `metadata.index` (applied, so in the log) and stops listing the
    /// entries it covers; the disk deletes them afterwards.
    mutating func createSnapshot(
        _ metadata: BifrostRaftCore.SnapshotMetadata, file: RawSnapshotFile
    )
        throws(RaftError)
    {
        guard metadata.index > snapshotMetadata.index, metadata.index <= lastIndex,
            term(at: metadata.index) == metadata.term
        else {
            throw RaftError(code: .snapshotOutOfDate, message: "snapshot at \(metadata.index) is not in the log")
        }
        dropPrefix(through: metadata.index)
        snapshotMetadata = metadata
        snapshotFile = file
    }

    // MARK: Helpers

    private mutating func dropPrefix(through index: UInt64) {
        let start = cacheStart
        terms.removeFirst(Int(index - snapshotMetadata.index))
        if index >= start {
            for _ in 0..<min(Int(index - start + 1), cache.count - cacheHead) { dropOldestCached() }
            compact()
        }
    }

    /// Drops entries at and after `index` (which is at most `lastIndex + 1`).
    private mutating func truncate(from index: UInt64) {
        let keep = Int(index - firstIndex)
        guard keep < terms.count else { return }
        let start = cacheStart
        terms.removeSubrange(keep...)
        if index <= start {
            clearCache()
        } else {
            let position = cacheHead + Int(index - start)
            for entry in cache[position...] { cachedPayloadBytes -= entry.payload.count }
            cache.removeSubrange(position...)
        }
    }

    /// Forgets the oldest cached entries beyond the limit (they stay on disk).
    private mutating func evict() {
        while cachedPayloadBytes > cacheLimit, cacheHead < cache.count { dropOldestCached() }
        compact()
    }

    /// Forgets the oldest cached entry, freeing its payload now rather than when the array is next compacted.
    private mutating func dropOldestCached() {
        cachedPayloadBytes -= cache[cacheHead].payload.count
        cache[cacheHead].payload = []
        cacheHead += 1
    }

    private mutating func clearCache() {
        cache.removeAll()
        cacheHead = 0
        cachedPayloadBytes = 0
    }

    private mutating func compact() {
        if cacheHead == cache.count {
            cache.removeAll(keepingCapacity: cache.count < 4096)
            cacheHead = 0
        } else if cacheHead > 1024, cacheHead * 2 > cache.count {
            cache.removeFirst(cacheHead)
            cacheHead = 0
        }
    }
}

/// The first failed read of a ``RaftLogMirror`` (reads are not mutating, so the record lives in a shared box).
final class ReadFailures: Sendable {
    private let recorded = Mutex<String?>(nil)
    var first: String? { recorded.withLock { $0 } }
    func record(_ message: String) { recorded.withLock { if $0 == nil { $0 = message } } }
}
