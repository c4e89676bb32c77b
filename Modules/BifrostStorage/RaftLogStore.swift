import Synchronization

/// A RocksDB database holding the Raft logs of many groups.
///
/// Two column families are used: `log` (one key per *run* of consecutive entries: group id and the run's first
/// index, both 8-byte big-endian) and `meta` (per group: hard state, membership configuration and snapshot marker,
/// see `docs/storage.md`).
/// Use ``store(forGroup:)`` to get the ``RaftLogStore`` of one group; the same instance is returned for the same
/// group, so its cached indexes are never duplicated.
public final class RaftLogDatabase: Sendable {
    /// The underlying database (shared by all groups).
    public let database: RocksDB
    private let stores: Mutex<[UInt64: RaftLogStore]>
    let logFamily: RocksDB.ColumnFamily
    let metaFamily: RocksDB.ColumnFamily

    /// The name of the column family holding log entries.
    public static let logColumnFamily = "log"
    /// The name of the column family holding per-group metadata.
    public static let metaColumnFamily = "meta"
    /// The key (in `meta`) of the database-wide format record.
    static let formatKey = Array("bifrost.log.format".utf8)
    /// The database format written by this code: 2, where a `log` value is a run of one or more entries.
    ///
    /// Format 1 stored one entry per key, which is a run of one entry, so a format-1 database is read as it is;
    /// opening one records format 2 before anything is written, so that older code refuses it cleanly.
    static let formatVersion: UInt8 = 2
    /// The formats this code reads.
    static let readableFormats: Set<UInt8> = [1, 2]

    /// Opens (creating when missing) the log database in the directory `path`.
    ///
    /// - Throws: ``StorageError``: `.io` when the path is unusable (for example a regular file), `.busy` when
    ///   another process has it open, `.corruption` when the format record is damaged or from an unknown version.
    public init(path: String, options: RocksDB.Options = RocksDB.Options()) throws {
        let database = try RocksDB(
            path: path, columnFamilies: [Self.logColumnFamily, Self.metaColumnFamily], options: options)
        do {
            self.logFamily = try database.columnFamily(Self.logColumnFamily)
            self.metaFamily = try database.columnFamily(Self.metaColumnFamily)
            if let format = try database.get(Self.formatKey, in: self.metaFamily) {
                let body = try MetaRecord.decode(format, what: "format record")
                guard body.count == 1, Self.readableFormats.contains(body[0]) else {
                    throw StorageError.corruption("log database \(path) has unknown format \(body)")
                }
                if body[0] != Self.formatVersion {
                    try database.put(
                        Self.formatKey, MetaRecord.encode([Self.formatVersion]), in: self.metaFamily, sync: true)
                }
            } else {
                try database.put(
                    Self.formatKey, MetaRecord.encode([Self.formatVersion]), in: self.metaFamily, sync: true)
            }
        } catch {
            database.close()
            throw error
        }
        self.database = database
        self.stores = Mutex([:])
    }

    /// Returns the log store of `groupID`, loading and validating its state on first use.
    ///
    /// - Throws: ``StorageError`` `.corruption` when the group's metadata or its first/last entries fail
    ///   validation, `.closed` after ``close()``.
    public func store(forGroup groupID: UInt64) throws -> RaftLogStore {
        try self.stores.withLock { stores in
            if let store = stores[groupID] { return store }
            let store = try RaftLogStore(database: self, groupID: groupID)
            stores[groupID] = store
            return store
        }
    }

    /// The ids of every group that has entries or metadata in this database, in ascending order.
    ///
    /// Costs one seek per group (not a scan of the log), so a restarting node can find the groups it hosts.
    public func groupIDs() throws -> [UInt64] {
        var groups = Set<UInt64>()
        for family in [self.logFamily, self.metaFamily] {
            let iterator = try self.database.makeIterator(in: family)
            iterator.seekToFirst()
            while iterator.isValid {
                let group = iterator.withKey { key -> UInt64? in
                    // Entry keys are 16 bytes and metadata keys 9; other keys (the format record) are skipped.
                    key.count == 16 || key.count == 9 ? key.readBigEndianUInt64(at: 0) : nil
                }
                guard let group else {
                    iterator.next()
                    continue
                }
                groups.insert(group)
                guard group < UInt64.max else { break }
                var nextGroup: [UInt8] = []
                nextGroup.appendBigEndian(group + 1)
                iterator.seek(nextGroup)
            }
            try iterator.checkError()
        }
        return groups.sorted()
    }

    /// Closes the database. Every store obtained from it then throws `.closed`. Idempotent.
    public func close() {
        self.database.close()
    }
}

/// The persistent Raft log of one group, with its hard state, membership configuration and snapshot marker.
///
/// ## Indexes
///
/// The log holds the entries `firstIndex ... lastIndex`. Everything up to ``snapshotIndex`` was compacted into a
/// snapshot; `firstIndex == snapshotIndex + 1`, and an empty log has `lastIndex == snapshotIndex`. A fresh log has
/// `snapshotIndex == 0`, `snapshotTerm == 0`, so its first entry has index 1. These values are loaded (and
/// validated) when the store is opened and cached in memory; no call scans the log.
///
/// ## Durability
///
/// Every mutating call is one RocksDB write batch: after a crash either all of it is visible or none of it.
/// With `sync: true` the write-ahead log is fsynced before the call returns. A write with `sync: false` can be
/// lost in a machine crash (not in a process crash), but never out of order: if a later synced write is durable,
/// so is every earlier write.
///
/// ## Concurrency
///
/// The store is `Sendable` and internally locked. Mutations are serialised by one lock. The cached indexes sit
/// behind a second lock that readers take only briefly (to read the cache and open a RocksDB iterator, which is a
/// consistent point-in-time view). Plain appends write without holding the cache lock, so readers are not
/// delayed by an append's fsync; writes that remove entries (truncation, compaction, snapshot reset) hold it for
/// the duration of the write so a reader never sees indexes that disagree with the data.
public final class RaftLogStore: Sendable {
    /// The Raft group this store belongs to.
    public let groupID: UInt64
    private let database: RocksDB
    private let logFamily: RocksDB.ColumnFamily
    private let metaFamily: RocksDB.ColumnFamily
    /// Serialises writers; holds a reusable encoding buffer.
    private let writer: Mutex<[UInt8]>
    private let cache: Mutex<LogState>

    /// A consistent view of a store's cached state.
    public struct LogState: Hashable, Sendable {
        /// The index of the last entry compacted into a snapshot (0 when none).
        public var snapshotIndex: UInt64
        /// The term of the entry at ``snapshotIndex`` (0 when none).
        public var snapshotTerm: UInt64
        /// The index of the last entry (equal to ``snapshotIndex`` when the log is empty).
        public var lastIndex: UInt64
        /// The term of the entry at ``lastIndex``.
        public var lastTerm: UInt64
        /// The persisted hard state (``HardState/initial`` when never saved).
        public var hardState: HardState
        /// The persisted membership configuration blob, if any was saved.
        public var configuration: [UInt8]?

        /// The index of the first entry still in the log.
        public var firstIndex: UInt64 { self.snapshotIndex + 1 }
    }

    init(database owner: RaftLogDatabase, groupID: UInt64) throws {
        self.groupID = groupID
        self.database = owner.database
        self.logFamily = owner.logFamily
        self.metaFamily = owner.metaFamily
        self.writer = Mutex([])
        self.cache = Mutex(
            try Self.load(
                database: owner.database, log: owner.logFamily, meta: owner.metaFamily, groupID: groupID))
    }

    // MARK: Cached state

    /// The cached state (indexes, hard state, configuration), read atomically.
    public var state: LogState { self.cache.withLock { $0 } }
    /// The index of the first entry in the log (`snapshotIndex + 1`).
    public var firstIndex: UInt64 { self.cache.withLock { $0.firstIndex } }
    /// The index of the last entry (equal to ``snapshotIndex`` when the log is empty).
    public var lastIndex: UInt64 { self.cache.withLock { $0.lastIndex } }
    /// The index of the last compacted entry (0 when nothing was compacted).
    public var snapshotIndex: UInt64 { self.cache.withLock { $0.snapshotIndex } }
    /// The persisted hard state.
    public var hardState: HardState { self.cache.withLock { $0.hardState } }
    /// The persisted membership configuration blob.
    public var configuration: [UInt8]? { self.cache.withLock { $0.configuration } }

    // MARK: Reads

    /// Returns the entries with indexes in `range`, stopping early so that their encoded size
    /// (``LogEntry/encodedSize``) stays within `maxBytes`, but always returning at least one entry when `range` is
    /// not empty.
    ///
    /// - Throws: ``StorageError``: `.compacted` when `range` starts at or below ``snapshotIndex``; `.notFound`
    ///   when it extends beyond ``lastIndex``; `.corruption` when an entry fails its checksum or the log has a gap.
    public func entries(in range: Range<UInt64>, maxBytes: Int = .max) throws -> [LogEntry] {
        if range.isEmpty { return [] }
        let iterator = try self.cache.withLock { state -> RocksDB.Iterator in
            guard range.lowerBound > state.snapshotIndex else {
                throw StorageError.compacted(
                    "group \(self.groupID): index \(range.lowerBound) is compacted (snapshot index "
                        + "\(state.snapshotIndex))")
            }
            guard range.upperBound <= state.lastIndex + 1 else {
                throw StorageError.notFound(
                    "group \(self.groupID): range \(range) extends beyond the last index \(state.lastIndex)")
            }
            return try self.database.makeIterator(
                in: self.logFamily, lowerBound: LogKeys.entry(self.groupID, 0),
                upperBound: LogKeys.entry(self.groupID, range.upperBound - 1) + [0])
        }
        var result: [LogEntry] = []
        var bytes = 0
        var expected = range.lowerBound
        var done = false
        // The run holding the first index starts at or before it; every later run starts where the previous ended.
        iterator.seekForPrev(LogKeys.entry(self.groupID, range.lowerBound))
        while iterator.isValid {
            let start = try iterator.withKey { key in try LogKeys.parseEntry(key, group: self.groupID) }
            guard result.isEmpty ? start <= expected : start == expected else {
                throw StorageError.corruption(
                    "group \(self.groupID): log has a gap: expected entry \(expected), found a run at \(start)")
            }
            try iterator.withValue { value in
                try LogRun.forEach(in: value, first: start, group: self.groupID) { index, encoded in
                    if index < expected { return true }
                    let entry = try LogEntry(decoding: encoded)
                    if !result.isEmpty && bytes + entry.encodedSize > maxBytes {
                        done = true
                        return false
                    }
                    bytes += entry.encodedSize
                    result.append(entry)
                    if index == range.upperBound - 1 {
                        done = true
                        return false
                    }
                    expected += 1
                    return true
                }
            }
            if done { return result }
            iterator.next()
        }
        try iterator.checkError()
        throw StorageError.corruption(
            "group \(self.groupID): entry \(expected) is missing although the last index is at least "
                + "\(range.upperBound - 1)")
    }

    /// Returns the term of the entry at `index`, including the term of the snapshot marker (``snapshotIndex``).
    ///
    /// - Throws: ``StorageError``: `.compacted` below ``snapshotIndex``, `.notFound` above ``lastIndex``,
    ///   `.corruption` when the stored entry fails validation.
    public func term(at index: UInt64) throws -> UInt64 {
        try self.cache.withLock { state in
            if index == state.snapshotIndex { return state.snapshotTerm }
            if index == state.lastIndex { return state.lastTerm }
            guard index > state.snapshotIndex else {
                throw StorageError.compacted(
                    "group \(self.groupID): index \(index) is compacted (snapshot index \(state.snapshotIndex))")
            }
            guard index < state.lastIndex else {
                throw StorageError.notFound(
                    "group \(self.groupID): index \(index) is beyond the last index \(state.lastIndex)")
            }
            return try self.readEntry(index).term
        }
    }

    /// Reads every entry of the log and checks that indexes are contiguous from ``firstIndex`` to ``lastIndex``,
    /// checksums match and terms never decrease. Costs a full scan; meant for tools, tests and paranoid startup.
    ///
    /// - Returns: the number of entries checked.
    /// - Throws: ``StorageError`` `.corruption` describing the first problem found.
    @discardableResult
    public func verifyIntegrity() throws -> Int {
        let (state, iterator) = try self.cache.withLock { state in
            (
                state,
                try self.database.makeIterator(
                    in: self.logFamily, lowerBound: LogKeys.entry(self.groupID, 0),
                    upperBound: LogKeys.groupEnd(self.groupID))
            )
        }
        var expected = state.firstIndex
        var previousTerm = state.snapshotTerm
        var count = 0
        iterator.seekToFirst()
        while iterator.isValid {
            let start = try iterator.withKey { key in try LogKeys.parseEntry(key, group: self.groupID) }
            guard start == expected else {
                throw StorageError.corruption(
                    "group \(self.groupID): log has a gap: expected entry \(expected), found a run at \(start)")
            }
            try iterator.withValue { value in
                try LogRun.forEach(in: value, first: start, group: self.groupID) { index, encoded in
                    let entry = try LogEntry(decoding: encoded)
                    guard entry.term >= previousTerm else {
                        throw StorageError.corruption(
                            "group \(self.groupID): term decreases at index \(index) (\(previousTerm) -> \(entry.term))"
                        )
                    }
                    previousTerm = entry.term
                    count += 1
                    expected += 1
                    return true
                }
            }
            iterator.next()
        }
        try iterator.checkError()
        guard expected == state.lastIndex + 1 else {
            throw StorageError.corruption(
                "group \(self.groupID): log ends at \(expected - 1) but the last index is \(state.lastIndex)")
        }
        guard previousTerm == state.lastTerm else {
            throw StorageError.corruption("group \(self.groupID): last term mismatch")
        }
        return count
    }

    // MARK: Writes

    /// Appends `entries` in one write batch.
    ///
    /// `entries` must have contiguous indexes and non-decreasing terms, start after ``snapshotIndex`` and at most
    /// at `lastIndex + 1`. When the first index is at or below ``lastIndex``, the conflicting suffix (from that
    /// index on) is removed in the same batch, so a crash never leaves a mix of old and new entries.
    ///
    /// - Parameter sync: fsync the write-ahead log before returning.
    /// - Throws: ``StorageError`` `.invalidArgument` when the entries break the rules above.
    public func append(_ entries: [LogEntry], sync: Bool) throws {
        try self.save(hardState: nil, configuration: nil, entries: entries, sync: sync)
    }

    /// Persists, in one atomic write batch, any of: a new hard state, a new membership configuration, and entries
    /// to append (with the same rules and suffix truncation as ``append(_:sync:)``).
    ///
    /// This is the call for a Raft "ready" step: after it returns with `sync: true`, all of it is durable, and a
    /// crash before that leaves either all of it or none of it.
    public func save(hardState: HardState?, configuration: [UInt8]?, entries: [LogEntry], sync: Bool) throws {
        if hardState == nil && configuration == nil && entries.isEmpty { return }
        try self.writer.withLock { scratch in
            let current = self.cache.withLock { $0 }
            var truncates = false
            var prefixTerm = current.lastTerm
            if let first = entries.first {
                try self.validate(entries, against: current)
                truncates = first.index <= current.lastIndex
                prefixTerm = try self.termLocked(first.index - 1, current)
                guard first.term >= prefixTerm else {
                    throw StorageError.invalidArgument(
                        "group \(self.groupID): entry \(first.index) has term \(first.term), lower than the term "
                            + "\(prefixTerm) of the entry before it")
                }
            }
            // A run that starts before the first new entry and reaches it keeps only the entries before it.
            let kept = truncates ? try entries.first.flatMap { try self.runPrefix(before: $0.index) } : nil
            func write(_ scratch: inout [UInt8]) throws {
                try self.database.write(sync: sync) { batch in
                    if let kept {
                        try batch.put(LogKeys.entry(self.groupID, kept.start), kept.bytes, in: self.logFamily)
                    }
                    if truncates, let first = entries.first {
                        try batch.deleteRange(
                            from: LogKeys.entry(self.groupID, first.index),
                            to: LogKeys.entry(self.groupID, current.lastIndex) + [0], in: self.logFamily)
                    }
                    var key = LogKeys.entry(self.groupID, 0)
                    func putRun() throws {
                        try key.withUnsafeBytes { key in
                            try scratch.withUnsafeBytes { value in
                                try batch.put(rawKey: key, rawValue: value, in: self.logFamily)
                            }
                        }
                    }
                    scratch.removeAll(keepingCapacity: true)
                    for entry in entries {
                        if !scratch.isEmpty && scratch.count + entry.encodedSize > LogRun.maxBytes {
                            try putRun()
                            scratch.removeAll(keepingCapacity: true)
                        }
                        if scratch.isEmpty { LogKeys.setIndex(&key, entry.index) }
                        try entry.encode(into: &scratch)
                    }
                    if !scratch.isEmpty { try putRun() }
                    if let hardState {
                        try batch.put(
                            LogKeys.meta(self.groupID, .hardState), MetaRecord.encode(hardState), in: self.metaFamily)
                    }
                    if let configuration {
                        try batch.put(
                            LogKeys.meta(self.groupID, .configuration), MetaRecord.encode(configuration),
                            in: self.metaFamily)
                    }
                }
            }
            let update = { (state: inout LogState) in
                if let last = entries.last {
                    state.lastIndex = last.index
                    state.lastTerm = last.term
                }
                if let hardState { state.hardState = hardState }
                if let configuration { state.configuration = configuration }
            }
            if truncates {
                try self.cache.withLock { state in
                    try write(&scratch)
                    update(&state)
                }
            } else {
                try write(&scratch)
                self.cache.withLock { update(&$0) }
            }
        }
    }

    /// Removes every entry with an index `>= index` (a no-op when `index > lastIndex`).
    ///
    /// - Throws: ``StorageError`` `.compacted` when `index <= snapshotIndex` (committed, compacted entries cannot be
    ///   removed).
    public func truncateSuffix(from index: UInt64, sync: Bool = true) throws {
        try self.writer.withLock { _ in
            let current = self.cache.withLock { $0 }
            guard index > current.snapshotIndex else {
                throw StorageError.compacted(
                    "group \(self.groupID): cannot truncate from \(index), at or below the snapshot index "
                        + "\(current.snapshotIndex)")
            }
            guard index <= current.lastIndex else { return }
            let newLastTerm = try self.termLocked(index - 1, current)
            let kept = try self.runPrefix(before: index)
            try self.cache.withLock { state in
                try self.database.write(sync: sync) { batch in
                    if let kept {
                        try batch.put(LogKeys.entry(self.groupID, kept.start), kept.bytes, in: self.logFamily)
                    }
                    try batch.deleteRange(
                        from: LogKeys.entry(self.groupID, index),
                        to: LogKeys.entry(self.groupID, current.lastIndex) + [0], in: self.logFamily)
                }
                state.lastIndex = index - 1
                state.lastTerm = newLastTerm
            }
        }
    }

    /// Discards the entries up to and including `index` after a snapshot covering them was saved, and records
    /// `(index, term)` as the new snapshot marker (so ``term(at:)`` still answers for `index`).
    ///
    /// A no-op when `index` is below ``snapshotIndex``.
    ///
    /// - Parameter term: the term of the entry at `index`; checked against the log.
    /// - Throws: ``StorageError`` `.invalidArgument` when `index > lastIndex` (use
    ///   ``resetToSnapshot(index:term:configuration:sync:)``) or when `term` does not match the log.
    public func compactPrefix(through index: UInt64, term: UInt64, sync: Bool = true) throws {
        try self.writer.withLock { _ in
            let current = self.cache.withLock { $0 }
            if index < current.snapshotIndex { return }
            guard index <= current.lastIndex else {
                throw StorageError.invalidArgument(
                    "group \(self.groupID): cannot compact through \(index), beyond the last index "
                        + "\(current.lastIndex)")
            }
            let storedTerm = try self.termLocked(index, current)
            guard storedTerm == term else {
                throw StorageError.invalidArgument(
                    "group \(self.groupID): compaction term \(term) does not match the term \(storedTerm) at \(index)")
            }
            if index == current.snapshotIndex { return }
            // A run that starts at or before `index` and goes past it is rewritten to start at `index + 1`, so the
            // first key is always the first index.
            let rest = index < current.lastIndex ? try self.runSuffix(from: index + 1) : nil
            try self.cache.withLock { state in
                try self.database.write(sync: sync) { batch in
                    try batch.deleteRange(
                        from: LogKeys.entry(self.groupID, 0), to: LogKeys.entry(self.groupID, index) + [0],
                        in: self.logFamily)
                    if let rest { try batch.put(LogKeys.entry(self.groupID, index + 1), rest, in: self.logFamily) }
                    try batch.put(
                        LogKeys.meta(self.groupID, .snapshotMarker), MetaRecord.encode(index: index, term: term),
                        in: self.metaFamily)
                }
                state.snapshotIndex = index
                state.snapshotTerm = term
            }
        }
    }

    /// Discards the whole log and sets the snapshot marker to `(index, term)`, as a follower does after installing
    /// a snapshot from the leader; optionally stores the snapshot's membership configuration in the same batch.
    ///
    /// Afterwards `firstIndex == index + 1` and `lastIndex == index`.
    ///
    /// - Throws: ``StorageError`` `.invalidArgument` when `index` is below the current ``snapshotIndex``.
    public func resetToSnapshot(index: UInt64, term: UInt64, configuration: [UInt8]?, sync: Bool = true) throws {
        try self.writer.withLock { _ in
            let current = self.cache.withLock { $0 }
            guard index >= current.snapshotIndex else {
                throw StorageError.invalidArgument(
                    "group \(self.groupID): snapshot index \(index) is older than the current snapshot index "
                        + "\(current.snapshotIndex)")
            }
            try self.cache.withLock { state in
                try self.database.write(sync: sync) { batch in
                    try batch.deleteRange(
                        from: LogKeys.entry(self.groupID, 0), to: LogKeys.groupEnd(self.groupID), in: self.logFamily)
                    try batch.put(
                        LogKeys.meta(self.groupID, .snapshotMarker), MetaRecord.encode(index: index, term: term),
                        in: self.metaFamily)
                    if let configuration {
                        try batch.put(
                            LogKeys.meta(self.groupID, .configuration), MetaRecord.encode(configuration),
                            in: self.metaFamily)
                    }
                }
                state.snapshotIndex = index
                state.snapshotTerm = term
                state.lastIndex = index
                state.lastTerm = term
                if let configuration { state.configuration = configuration }
            }
        }
    }

    // MARK: Internals

    private func validate(_ entries: [LogEntry], against current: LogState) throws {
        guard let first = entries.first else { return }
        guard first.index > current.snapshotIndex else {
            throw StorageError.invalidArgument(
                "group \(self.groupID): entry \(first.index) overlaps the compacted prefix (snapshot index "
                    + "\(current.snapshotIndex))")
        }
        guard first.index <= current.lastIndex + 1 else {
            throw StorageError.invalidArgument(
                "group \(self.groupID): entry \(first.index) would leave a gap after the last index \(current.lastIndex)"
            )
        }
        var previous = first
        for entry in entries.dropFirst() {
            guard previous.index < UInt64.max, entry.index == previous.index + 1 else {
                throw StorageError.invalidArgument(
                    "group \(self.groupID): entries are not contiguous (\(previous.index) then \(entry.index))")
            }
            guard entry.term >= previous.term else {
                throw StorageError.invalidArgument(
                    "group \(self.groupID): terms decrease (\(previous.term) then \(entry.term) at \(entry.index))")
            }
            previous = entry
        }
    }

    /// The term at `index` for a writer (which holds the writer lock, so `current` cannot change under it).
    private func termLocked(_ index: UInt64, _ current: LogState) throws -> UInt64 {
        if index == current.snapshotIndex { return current.snapshotTerm }
        if index == current.lastIndex { return current.lastTerm }
        guard index > current.snapshotIndex else {
            throw StorageError.compacted("group \(self.groupID): index \(index) is compacted")
        }
        guard index < current.lastIndex else {
            throw StorageError.notFound("group \(self.groupID): index \(index) is beyond the last index")
        }
        return try self.readEntry(index).term
    }

    private func readEntry(_ index: UInt64) throws -> LogEntry {
        try self.withRun(containing: index) { start, run in
            var found: LogEntry?
            try LogRun.forEach(in: run, first: start, group: self.groupID) { entryIndex, encoded in
                guard entryIndex == index else { return true }
                found = try LogEntry(decoding: encoded)
                return false
            }
            guard let found else {
                throw StorageError.corruption("group \(self.groupID): entry \(index) is missing inside the log")
            }
            return found
        }
    }

    /// Calls `body` with the first index and the bytes (valid only inside `body`) of the run holding `index`.
    private func withRun<Result>(
        containing index: UInt64, _ body: (UInt64, UnsafeRawBufferPointer) throws -> Result
    ) throws -> Result {
        let iterator = try self.database.makeIterator(
            in: self.logFamily, lowerBound: LogKeys.entry(self.groupID, 0),
            upperBound: LogKeys.entry(self.groupID, index) + [0])
        iterator.seekToLast()
        guard iterator.isValid else {
            try iterator.checkError()
            throw StorageError.corruption("group \(self.groupID): entry \(index) is missing inside the log")
        }
        let start = try iterator.withKey { key in try LogKeys.parseEntry(key, group: self.groupID) }
        return try iterator.withValue { try body(start, $0) }
    }

    /// The entries before `index` of the run holding `index`, when that run starts before it (a truncation from
    /// `index` keeps them).
    private func runPrefix(before index: UInt64) throws -> (start: UInt64, bytes: [UInt8])? {
        try self.withRun(containing: index) { start, run in
            guard start < index else { return nil }
            let end = try LogRun.offset(of: index, in: run, first: start, group: self.groupID)
            return (start, Array(run[..<end]))
        }
    }

    /// The entries from `index` on of the run holding `index` (a compaction through `index - 1` keeps them).
    private func runSuffix(from index: UInt64) throws -> [UInt8]? {
        try self.withRun(containing: index) { start, run in
            guard start < index else { return nil }
            return Array(run[try LogRun.offset(of: index, in: run, first: start, group: self.groupID)...])
        }
    }

    private static func load(
        database: RocksDB, log: RocksDB.ColumnFamily, meta: RocksDB.ColumnFamily, groupID: UInt64
    ) throws -> LogState {
        var hardState = HardState.initial
        if let bytes = try database.get(LogKeys.meta(groupID, .hardState), in: meta) {
            hardState = try MetaRecord.decodeHardState(bytes)
        }
        var configuration: [UInt8]? = nil
        if let bytes = try database.get(LogKeys.meta(groupID, .configuration), in: meta) {
            configuration = try MetaRecord.decode(bytes, what: "configuration")
        }
        var snapshotIndex: UInt64 = 0
        var snapshotTerm: UInt64 = 0
        if let bytes = try database.get(LogKeys.meta(groupID, .snapshotMarker), in: meta) {
            (snapshotIndex, snapshotTerm) = try MetaRecord.decodeMarker(bytes)
            guard snapshotIndex < UInt64.max else {
                throw StorageError.corruption("group \(groupID): the snapshot marker is at the largest index")
            }
        }
        let iterator = try database.makeIterator(
            in: log, lowerBound: LogKeys.entry(groupID, 0), upperBound: LogKeys.groupEnd(groupID))
        iterator.seekToFirst()
        guard iterator.isValid else {
            try iterator.checkError()
            return LogState(
                snapshotIndex: snapshotIndex, snapshotTerm: snapshotTerm, lastIndex: snapshotIndex,
                lastTerm: snapshotTerm, hardState: hardState, configuration: configuration)
        }
        let first = try Self.decodeRun(iterator, group: groupID, last: false)
        guard first.index == snapshotIndex + 1 else {
            throw StorageError.corruption(
                "group \(groupID): log starts at \(first.index) but the snapshot marker is at \(snapshotIndex)")
        }
        guard first.term >= snapshotTerm else {
            throw StorageError.corruption("group \(groupID): first entry's term is below the snapshot term")
        }
        iterator.seekToLast()
        let last = try Self.decodeRun(iterator, group: groupID, last: true)
        // Every `lastIndex + 1` below is then safe.
        guard last.index < UInt64.max else {
            throw StorageError.corruption("group \(groupID): the log reaches the largest index")
        }
        guard last.term >= first.term else {
            throw StorageError.corruption("group \(groupID): last entry's term is below the first entry's term")
        }
        return LogState(
            snapshotIndex: snapshotIndex, snapshotTerm: snapshotTerm, lastIndex: last.index, lastTerm: last.term,
            hardState: hardState, configuration: configuration)
    }

    /// Decodes the first (or the last) entry of the run under the iterator.
    private static func decodeRun(_ iterator: RocksDB.Iterator, group: UInt64, last: Bool) throws -> LogEntry {
        guard iterator.isValid else {
            try iterator.checkError()
            throw StorageError.corruption("group \(group): log vanished while loading")
        }
        let start = try iterator.withKey { try LogKeys.parseEntry($0, group: group) }
        return try iterator.withValue { value in
            var chosen: UnsafeRawBufferPointer?
            try LogRun.forEach(in: value, first: start, group: group) { _, encoded in
                chosen = encoded
                return last
            }
            guard let chosen else {
                throw StorageError.corruption("group \(group): the run at \(start) holds no entry")
            }
            return try LogEntry(decoding: chosen)
        }
    }
}

/// The value of one `log` key: the encodings (``LogEntry``, each with its own index and checksum) of one or more
/// consecutive entries, the first of which has the key's index. One synced write of many entries is one run, so
/// RocksDB indexes one key per write instead of one per entry.
enum LogRun {
    /// A run is closed once it holds this many bytes (a larger single entry is a run of its own).
    static let maxBytes = 64 << 10

    /// Calls `body` with the index and encoding of each entry of `run`, whose first index is `first`, in order,
    /// until `body` returns false. Checks the layout (version, lengths, consecutive indexes) but not the
    /// checksums: ``LogEntry/init(decoding:)`` does that for the entries actually read.
    ///
    /// - Throws: ``StorageError`` `.corruption` when the run is empty, truncated or out of sequence.
    static func forEach(
        in run: UnsafeRawBufferPointer, first: UInt64, group: UInt64,
        _ body: (UInt64, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        guard !run.isEmpty else { throw StorageError.corruption("group \(group): the run at \(first) is empty") }
        var offset = 0
        var index = first
        while offset < run.count {
            let remaining = run.count - offset
            guard remaining >= LogEntry.encodingOverhead, run[offset] == LogEntry.layoutVersion else {
                throw StorageError.corruption(
                    "group \(group): the run at \(first) has a malformed entry at byte \(offset)")
            }
            let size = LogEntry.encodingOverhead + Int(run.readBigEndianUInt32(at: offset + 17))
            guard size <= remaining else {
                throw StorageError.corruption("group \(group): the run at \(first) is truncated at entry \(index)")
            }
            let stored = run.readBigEndianUInt64(at: offset + 1)
            guard stored == index else {
                throw StorageError.corruption(
                    "group \(group): the run at \(first) holds entry \(stored) in place of \(index)")
            }
            guard try body(index, UnsafeRawBufferPointer(rebasing: run[offset..<(offset + size)])) else { return }
            offset += size
            if offset < run.count {
                guard index < UInt64.max else {
                    throw StorageError.corruption("group \(group): the run at \(first) goes past the last index")
                }
                index += 1
            }
        }
    }

    /// The byte offset of entry `index` in `run` (whose first index is `first`).
    static func offset(of index: UInt64, in run: UnsafeRawBufferPointer, first: UInt64, group: UInt64) throws -> Int {
        var offset = 0
        var found: Int?
        try forEach(in: run, first: first, group: group) { entryIndex, encoded in
            if entryIndex == index {
                found = offset
                return false
            }
            offset += encoded.count
            return true
        }
        guard let found else {
            throw StorageError.corruption("group \(group): entry \(index) is missing from the run at \(first)")
        }
        return found
    }
}

/// Key encodings of the log database.
enum LogKeys {
    enum MetaKind: UInt8 {
        case hardState = 1
        case configuration = 2
        case snapshotMarker = 3
    }

    /// `group (8, BE) | index (8, BE)` in the `log` column family.
    static func entry(_ group: UInt64, _ index: UInt64) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(17)
        key.appendBigEndian(group)
        key.appendBigEndian(index)
        return key
    }

    /// Overwrites the index part of an entry key in place.
    static func setIndex(_ key: inout [UInt8], _ index: UInt64) {
        withUnsafeBytes(of: index.bigEndian) { bytes in
            for offset in 0..<8 { key[8 + offset] = bytes[offset] }
        }
    }

    /// A key just above every entry key of `group` (`group | FF * 8 | 00`).
    static func groupEnd(_ group: UInt64) -> [UInt8] {
        entry(group, UInt64.max) + [0]
    }

    /// `group (8, BE) | kind (1)` in the `meta` column family.
    static func meta(_ group: UInt64, _ kind: MetaKind) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(9)
        key.appendBigEndian(group)
        key.append(kind.rawValue)
        return key
    }

    static func parseEntry(_ key: UnsafeRawBufferPointer, group: UInt64) throws -> UInt64 {
        guard key.count == 16, key.readBigEndianUInt64(at: 0) == group else {
            throw StorageError.corruption("malformed log key of \(key.count) bytes in group \(group)")
        }
        return key.readBigEndianUInt64(at: 8)
    }
}

/// Metadata values: `version (1) = 1 | body | CRC-32C of version and body (4, BE)`.
enum MetaRecord {
    static let version: UInt8 = 1

    static func encode(_ body: [UInt8]) -> [UInt8] {
        var record: [UInt8] = [Self.version]
        record.reserveCapacity(body.count + 5)
        record.append(contentsOf: body)
        record.appendBigEndian(CRC32C.checksum(record))
        return record
    }

    /// Body: `term (8) | has vote (1) | vote (8) | commit (8)`.
    static func encode(_ hardState: HardState) -> [UInt8] {
        var body: [UInt8] = []
        body.appendBigEndian(hardState.term)
        body.append(hardState.vote == nil ? 0 : 1)
        body.appendBigEndian(hardState.vote ?? 0)
        body.appendBigEndian(hardState.commit)
        return Self.encode(body)
    }

    /// Body: `index (8) | term (8)`.
    static func encode(index: UInt64, term: UInt64) -> [UInt8] {
        var body: [UInt8] = []
        body.appendBigEndian(index)
        body.appendBigEndian(term)
        return Self.encode(body)
    }

    static func decode(_ record: [UInt8], what: String) throws -> [UInt8] {
        guard record.count >= 5 else {
            throw StorageError.corruption("\(what) record of \(record.count) bytes is truncated")
        }
        guard record[0] == Self.version else {
            throw StorageError.corruption("\(what) record has unknown version \(record[0])")
        }
        let stored = record.withUnsafeBytes { $0.readBigEndianUInt32(at: record.count - 4) }
        let computed = CRC32C.checksum(record[0..<(record.count - 4)])
        guard stored == computed else {
            throw StorageError.corruption("\(what) record checksum mismatch")
        }
        return Array(record[1..<(record.count - 4)])
    }

    static func decodeHardState(_ record: [UInt8]) throws -> HardState {
        let body = try Self.decode(record, what: "hard state")
        guard body.count == 25, body[8] <= 1 else {
            throw StorageError.corruption("hard state record has a malformed body of \(body.count) bytes")
        }
        return body.withUnsafeBytes { bytes in
            HardState(
                term: bytes.readBigEndianUInt64(at: 0),
                vote: bytes[8] == 1 ? bytes.readBigEndianUInt64(at: 9) : nil,
                commit: bytes.readBigEndianUInt64(at: 17))
        }
    }

    static func decodeMarker(_ record: [UInt8]) throws -> (UInt64, UInt64) {
        let body = try Self.decode(record, what: "snapshot marker")
        guard body.count == 16 else {
            throw StorageError.corruption("snapshot marker record has a malformed body of \(body.count) bytes")
        }
        return body.withUnsafeBytes { ($0.readBigEndianUInt64(at: 0), $0.readBigEndianUInt64(at: 8)) }
    }
}
