import CRocksDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small, safe wrapper around RocksDB's C API.
///
/// - Column families are opened (and created when missing) at open time and referred to by ``ColumnFamily`` values.
/// - Every RocksDB error (`errptr`) becomes a ``StorageError``; the C strings are freed.
/// - The database is closed exactly once: by ``close()``, or when the last user (an in-flight call or a live
///   ``Iterator``) finishes after ``close()`` was requested, or in `deinit`. Calls made after ``close()`` throw
///   ``StorageError/Code/closed``.
///
/// RocksDB's `rocksdb_t` is documented as safe for concurrent use from many threads (reads, writes and iterators
/// need no external synchronisation), so one `RocksDB` may be shared freely between tasks.
public final class RocksDB: @unchecked Sendable {
    // Why `@unchecked Sendable` is sound:
    // - All mutable state (the `rocksdb_t*`, the column-family handles, the user count, the close flag) lives in
    //   `state`, a `Mutex`. A handle is only used between `acquire()` and `release()`, and the handles are
    //   destroyed only when the user count is zero and a close was requested, so no call ever sees a freed handle.
    // - `rocksdb_t` and `rocksdb_column_family_handle_t` are thread-safe per RocksDB's documentation.
    // - The option objects below are created in `init`, never mutated afterwards, only read (as `const`) by
    //   RocksDB, and destroyed in `deinit` when no other reference to `self` exists.
    private let state: Mutex<State>
    private let options: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let asyncWriteOptions: OpaquePointer
    private let readOptions: OpaquePointer

    /// The path the database was opened at.
    public let path: String
    /// The column families of this database, by name (including `default` and any that already existed on disk).
    public let columnFamilies: [String: ColumnFamily]

    private struct State {
        var db: OpaquePointer?
        var handles: [OpaquePointer]
        var users: Int = 0
        var closeRequested = false
    }

    /// A column family of an open ``RocksDB``.
    public struct ColumnFamily: Hashable, Sendable {
        /// The column family's name.
        public let name: String
        let slot: Int
    }

    /// Options for opening a database.
    public struct Options: Sendable {
        /// The block compression applied to SST files.
        public enum Compression: Sendable {
            /// No compression.
            case none
            /// LZ4 (fast; the default).
            case lz4
        }

        /// Creates the database when it does not exist (default `true`).
        public var createIfMissing: Bool = true
        /// SST block compression (default LZ4). The write-ahead log is never compressed.
        public var compression: Compression = .lz4
        /// Background flush/compaction jobs (default 2).
        public var maxBackgroundJobs: Int = 2
        /// The size of one memtable per column family, in bytes (default 16 MiB; RocksDB's own is 64 MiB). A Raft
        /// log deletes what a snapshot covers, so large memtables mostly hold dead entries in memory: at most
        /// `maxWriteBufferNumber` memtables per column family stay in RAM.
        public var writeBufferSize: Int = 16 << 20
        /// Memtables per column family, the one being filled included (default 2).
        public var maxWriteBufferNumber: Int = 2
        /// The write-ahead log's size at which RocksDB flushes the column families that hold its oldest file
        /// (default `nil`: three memtables, `3 * writeBufferSize`, 48 MiB; RocksDB's own default is four times all
        /// memtables of all column families). A column family written rarely (the Raft hard state) would otherwise
        /// keep every log file since its last flush: hundreds of MiB on disk, all replayed at the next start.
        /// Flushes are atomic (every column family at once), so this limit is a backstop: the log files are
        /// normally released when the largest memtable fills.
        public var maxTotalWALSize: Int? = nil

        /// Default options.
        public init() {}
    }

    /// Opens (or creates) the database at `path` with the given column families.
    ///
    /// Missing column families are created. Column families that exist on disk but are not listed are opened too,
    /// because RocksDB refuses to open a database without all of them. `default` is always present.
    ///
    /// - Throws: ``StorageError`` with code `.io` when the path cannot be used (for example it is a regular file),
    ///   `.busy` when another process holds the database lock, `.corruption` when RocksDB detects corruption.
    public init(path: String, columnFamilies requested: [String], options: Options = Options()) throws {
        guard let dbOptions = rocksdb_options_create() else {
            throw StorageError.internal("rocksdb_options_create failed")
        }
        rocksdb_options_set_create_if_missing(dbOptions, options.createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(dbOptions, 1)
        rocksdb_options_set_paranoid_checks(dbOptions, 1)
        // Recover to the last consistent point of the WAL: a torn tail (an unsynced write cut by a crash) is
        // dropped, everything before it is kept. Synced writes are never lost.
        rocksdb_options_set_wal_recovery_mode(dbOptions, Int32(rocksdb_point_in_time_recovery))
        rocksdb_options_set_max_background_jobs(dbOptions, Int32(clamping: max(1, options.maxBackgroundJobs)))
        let writeBufferSize = max(1 << 20, options.writeBufferSize)
        rocksdb_options_set_write_buffer_size(dbOptions, writeBufferSize)
        let maxTotalWALSize = options.maxTotalWALSize ?? (writeBufferSize > Int.max / 3 ? Int.max : writeBufferSize * 3)
        rocksdb_options_set_max_total_wal_size(dbOptions, UInt64(max(1 << 20, maxTotalWALSize)))
        // A memtable flush flushes every column family: the small ones (the Raft hard state) then release the old
        // log files with the big one, instead of pinning them until `maxTotalWALSize` forces a flush of its own.
        rocksdb_options_set_atomic_flush(dbOptions, 1)
        rocksdb_options_set_max_write_buffer_number(dbOptions, Int32(clamping: max(2, options.maxWriteBufferNumber)))
        switch options.compression {
        case .none: rocksdb_options_set_compression(dbOptions, Int32(rocksdb_no_compression))
        case .lz4: rocksdb_options_set_compression(dbOptions, Int32(rocksdb_lz4_compression))
        }

        // Every column family that already exists must be opened; add the requested ones and `default`.
        var names = ["default"]
        var listLength = 0
        var listError: UnsafeMutablePointer<CChar>? = nil
        if let list = rocksdb_list_column_families(dbOptions, path, &listLength, &listError) {
            for index in 0..<listLength {
                if let cName = list[index] {
                    let name = String(cString: cName)
                    if !names.contains(name) { names.append(name) }
                }
            }
            rocksdb_list_column_families_destroy(list, listLength)
        }
        // A listing error means the database does not exist yet (or cannot be read); `open` reports the real
        // problem below.
        if let listError { rocksdb_free(listError) }
        for name in requested where !names.contains(name) {
            names.append(name)
        }

        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let cfOptions = [OpaquePointer?](repeating: dbOptions, count: names.count)
        var openError: UnsafeMutablePointer<CChar>? = nil
        let db = withCStrings(names) { cNames in
            cfOptions.withUnsafeBufferPointer { cfOptionsBuffer in
                handles.withUnsafeMutableBufferPointer { handlesBuffer in
                    rocksdb_open_column_families(
                        dbOptions, path, Int32(names.count), cNames, cfOptionsBuffer.baseAddress,
                        handlesBuffer.baseAddress, &openError)
                }
            }
        }
        if let error = RocksDB.takeError(openError, "open \(path)") {
            rocksdb_options_destroy(dbOptions)
            throw error
        }
        guard let db else {
            rocksdb_options_destroy(dbOptions)
            throw StorageError.internal("rocksdb_open_column_families returned no database for \(path)")
        }
        let openHandles = handles.compactMap { $0 }
        guard openHandles.count == names.count else {
            for handle in openHandles { rocksdb_column_family_handle_destroy(handle) }
            rocksdb_close(db)
            rocksdb_options_destroy(dbOptions)
            throw StorageError.internal("rocksdb_open_column_families returned missing handles for \(path)")
        }
        var families: [String: ColumnFamily] = [:]
        for (slot, name) in names.enumerated() {
            families[name] = ColumnFamily(name: name, slot: slot)
        }

        self.path = path
        self.columnFamilies = families
        self.options = dbOptions
        // These constructors are C++ `new` behind the C API: they never return NULL (allocation failure aborts in
        // C++ before returning), so the implicit unwraps below cannot trap on anything a caller or the disk controls.
        self.syncWriteOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(self.syncWriteOptions, 1)
        self.asyncWriteOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(self.asyncWriteOptions, 0)
        self.readOptions = rocksdb_readoptions_create()
        rocksdb_readoptions_set_verify_checksums(self.readOptions, 1)
        self.state = Mutex(State(db: db, handles: openHandles))
    }

    deinit {
        // No other reference exists, so no call and no iterator is in flight.
        let leftover = self.state.withLock { state -> (OpaquePointer, [OpaquePointer])? in
            guard let db = state.db else { return nil }
            state.db = nil
            let handles = state.handles
            state.handles = []
            return (db, handles)
        }
        if let (db, handles) = leftover {
            RocksDB.closeNow(db: db, handles: handles)
        }
        rocksdb_readoptions_destroy(self.readOptions)
        rocksdb_writeoptions_destroy(self.asyncWriteOptions)
        rocksdb_writeoptions_destroy(self.syncWriteOptions)
        rocksdb_options_destroy(self.options)
    }

    /// Returns the column family named `name`.
    ///
    /// - Throws: ``StorageError`` `.invalidArgument` when the database has no such column family.
    public func columnFamily(_ name: String) throws -> ColumnFamily {
        guard let family = self.columnFamilies[name] else {
            throw StorageError.invalidArgument("no column family named '\(name)' in \(self.path)")
        }
        return family
    }

    /// Closes the database.
    ///
    /// Idempotent. If calls or iterators are still in flight, the database is closed when the last of them
    /// finishes; new calls fail with `.closed` immediately.
    public func close() {
        let toClose = self.state.withLock { state -> (OpaquePointer, [OpaquePointer])? in
            state.closeRequested = true
            guard state.users == 0, let db = state.db else { return nil }
            state.db = nil
            let handles = state.handles
            state.handles = []
            return (db, handles)
        }
        if let (db, handles) = toClose {
            RocksDB.closeNow(db: db, handles: handles)
        }
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool {
        self.state.withLock { $0.closeRequested }
    }

    // MARK: Point operations

    /// Reads the value stored under `key`, or `nil` when there is none.
    public func get(_ key: [UInt8], in family: ColumnFamily) throws -> [UInt8]? {
        try key.withUnsafeBytes { try self.get(rawKey: $0, in: family) { $0.map { Array($0) } } }
    }

    /// Reads the value stored under `key` and hands it to `body` without copying (`nil` when absent).
    ///
    /// The buffer is only valid inside `body`.
    public func get<Result>(
        rawKey key: UnsafeRawBufferPointer, in family: ColumnFamily,
        _ body: (UnsafeRawBufferPointer?) throws -> Result
    ) throws -> Result {
        try self.withHandles { db, handles in
            let handle = try Self.handle(handles, family)
            var error: UnsafeMutablePointer<CChar>? = nil
            let pinned = rocksdb_get_pinned_cf(
                db, self.readOptions, handle, key.baseAddress?.assumingMemoryBound(to: CChar.self), key.count,
                &error)
            if let error = RocksDB.takeError(error, "get") {
                if let pinned { rocksdb_pinnableslice_destroy(pinned) }
                throw error
            }
            guard let pinned else { return try body(nil) }
            defer { rocksdb_pinnableslice_destroy(pinned) }
            var length = 0
            let value = rocksdb_pinnableslice_value(pinned, &length)
            return try body(UnsafeRawBufferPointer(start: value, count: length))
        }
    }

    /// Stores `value` under `key`.
    ///
    /// - Parameter sync: when `true`, the write-ahead log is fsynced before this returns, so the write survives
    ///   a machine crash; when `false`, it survives a process crash only.
    public func put(_ key: [UInt8], _ value: [UInt8], in family: ColumnFamily, sync: Bool) throws {
        try self.write(sync: sync) { batch in try batch.put(key, value, in: family) }
    }

    /// Deletes `key` (a no-op when absent).
    public func delete(_ key: [UInt8], in family: ColumnFamily, sync: Bool) throws {
        try self.write(sync: sync) { batch in try batch.delete(key, in: family) }
    }

    /// Deletes every key in `[start, end)`.
    public func deleteRange(from start: [UInt8], to end: [UInt8], in family: ColumnFamily, sync: Bool) throws {
        try self.write(sync: sync) { batch in try batch.deleteRange(from: start, to: end, in: family) }
    }

    // MARK: Batches

    /// A set of writes applied atomically by ``RocksDB/write(sync:_:)``.
    ///
    /// Non-copyable and only lent to the closure of `write`, so it cannot outlive the database handles it uses.
    public struct WriteBatch: ~Copyable {
        fileprivate let raw: OpaquePointer
        fileprivate let handles: [OpaquePointer]

        /// The number of operations recorded so far.
        public var count: Int { Int(rocksdb_writebatch_count(self.raw)) }

        /// Records a put.
        public func put(_ key: [UInt8], _ value: [UInt8], in family: ColumnFamily) throws {
            try key.withUnsafeBytes { key in
                try value.withUnsafeBytes { value in try self.put(rawKey: key, rawValue: value, in: family) }
            }
        }

        /// Records a put from raw buffers (RocksDB copies the bytes into the batch).
        public func put(
            rawKey key: UnsafeRawBufferPointer, rawValue value: UnsafeRawBufferPointer, in family: ColumnFamily
        )
            throws
        {
            let handle = try RocksDB.handle(self.handles, family)
            rocksdb_writebatch_put_cf(
                self.raw, handle, key.baseAddress?.assumingMemoryBound(to: CChar.self), key.count,
                value.baseAddress?.assumingMemoryBound(to: CChar.self), value.count)
        }

        /// Records a delete.
        public func delete(_ key: [UInt8], in family: ColumnFamily) throws {
            let handle = try RocksDB.handle(self.handles, family)
            key.withUnsafeBytes { key in
                rocksdb_writebatch_delete_cf(
                    self.raw, handle, key.baseAddress?.assumingMemoryBound(to: CChar.self), key.count)
            }
        }

        /// Records the deletion of every key in `[start, end)`.
        public func deleteRange(from start: [UInt8], to end: [UInt8], in family: ColumnFamily) throws {
            let handle = try RocksDB.handle(self.handles, family)
            start.withUnsafeBytes { start in
                end.withUnsafeBytes { end in
                    rocksdb_writebatch_delete_range_cf(
                        self.raw, handle, start.baseAddress?.assumingMemoryBound(to: CChar.self), start.count,
                        end.baseAddress?.assumingMemoryBound(to: CChar.self), end.count)
                }
            }
        }
    }

    /// Builds a batch in `body` and applies it atomically: after a crash either all of its operations are
    /// visible or none is. Operations apply in the order recorded (a put after a delete-range wins).
    ///
    /// - Parameter sync: when `true`, the write-ahead log is fsynced before this returns.
    /// - Throws: whatever `body` throws (nothing is written then), or a ``StorageError``.
    public func write(sync: Bool, _ body: (inout WriteBatch) throws -> Void) throws {
        try self.withHandles { db, handles in
            guard let raw = rocksdb_writebatch_create() else {
                throw StorageError.internal("rocksdb_writebatch_create failed")
            }
            defer { rocksdb_writebatch_destroy(raw) }
            var batch = WriteBatch(raw: raw, handles: handles)
            try body(&batch)
            var error: UnsafeMutablePointer<CChar>? = nil
            rocksdb_write(db, sync ? self.syncWriteOptions : self.asyncWriteOptions, raw, &error)
            if let error = RocksDB.takeError(error, "write") { throw error }
        }
    }

    // MARK: Maintenance

    /// Flushes the memtables of all column families to SST files and waits for it.
    public func flush() throws {
        try self.withHandles { db, handles in
            guard let flushOptions = rocksdb_flushoptions_create() else {
                throw StorageError.internal("rocksdb_flushoptions_create failed")
            }
            defer { rocksdb_flushoptions_destroy(flushOptions) }
            rocksdb_flushoptions_set_wait(flushOptions, 1)
            for handle in handles {
                var error: UnsafeMutablePointer<CChar>? = nil
                rocksdb_flush_cf(db, flushOptions, handle, &error)
                if let error = RocksDB.takeError(error, "flush") { throw error }
            }
        }
    }

    /// Fsyncs the write-ahead log, making every earlier unsynced write durable.
    public func syncWAL() throws {
        try self.withHandles { db, _ in
            var error: UnsafeMutablePointer<CChar>? = nil
            rocksdb_flush_wal(db, 1, &error)
            if let error = RocksDB.takeError(error, "flush_wal") { throw error }
        }
    }

    // MARK: Iterators

    /// Creates an iterator over `family` restricted to `[lowerBound, upperBound)` (either may be `nil`).
    ///
    /// The iterator reads a consistent point-in-time view taken at creation. It keeps the database open until it
    /// is deinitialised; do not keep it longer than needed.
    public func makeIterator(
        in family: ColumnFamily, lowerBound: [UInt8]? = nil, upperBound: [UInt8]? = nil
    )
        throws -> Iterator
    {
        let (db, handles) = try self.acquire()
        do {
            let handle = try Self.handle(handles, family)
            return try Iterator(
                database: self, db: db, handle: handle, lowerBound: lowerBound, upperBound: upperBound)
        } catch {
            self.release()
            throw error
        }
    }

    /// A cursor over a key range of one column family.
    ///
    /// Not thread-safe: use one iterator from one task at a time. Keys and values handed to the `with...`
    /// closures are valid only inside the closure.
    public final class Iterator {
        private let database: RocksDB
        private let raw: OpaquePointer
        private let readOptions: OpaquePointer
        // RocksDB's C API keeps pointers to the bound bytes, so they live as long as the iterator.
        private let bounds: UnsafeMutableRawBufferPointer

        fileprivate init(
            database: RocksDB, db: OpaquePointer, handle: OpaquePointer, lowerBound: [UInt8]?, upperBound: [UInt8]?
        ) throws {
            guard let readOptions = rocksdb_readoptions_create() else {
                throw StorageError.internal("rocksdb_readoptions_create failed")
            }
            rocksdb_readoptions_set_verify_checksums(readOptions, 1)
            let lowerCount = lowerBound?.count ?? 0
            let upperCount = upperBound?.count ?? 0
            let bounds = UnsafeMutableRawBufferPointer.allocate(
                byteCount: max(1, lowerCount + upperCount), alignment: 8)
            if let lowerBound {
                bounds.copyBytes(from: lowerBound)
                rocksdb_readoptions_set_iterate_lower_bound(
                    readOptions, bounds.baseAddress?.assumingMemoryBound(to: CChar.self), lowerCount)
            }
            if let upperBound {
                let upper = UnsafeMutableRawBufferPointer(rebasing: bounds[lowerCount..<(lowerCount + upperCount)])
                upper.copyBytes(from: upperBound)
                rocksdb_readoptions_set_iterate_upper_bound(
                    readOptions, upper.baseAddress?.assumingMemoryBound(to: CChar.self), upperCount)
            }
            guard let raw = rocksdb_create_iterator_cf(db, readOptions, handle) else {
                rocksdb_readoptions_destroy(readOptions)
                bounds.deallocate()
                throw StorageError.internal("rocksdb_create_iterator_cf failed")
            }
            self.database = database
            self.raw = raw
            self.readOptions = readOptions
            self.bounds = bounds
        }

        deinit {
            rocksdb_iter_destroy(self.raw)
            rocksdb_readoptions_destroy(self.readOptions)
            self.bounds.deallocate()
            self.database.release()
        }

        /// Whether the iterator is positioned on an entry.
        public var isValid: Bool { rocksdb_iter_valid(self.raw) != 0 }

        /// Positions on the first key in range.
        public func seekToFirst() { rocksdb_iter_seek_to_first(self.raw) }

        /// Positions on the last key in range.
        public func seekToLast() { rocksdb_iter_seek_to_last(self.raw) }

        /// Positions on the first key `>= key`.
        public func seek(_ key: [UInt8]) {
            key.withUnsafeBytes {
                rocksdb_iter_seek(self.raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count)
            }
        }

        /// Positions on the last key `<= key`.
        public func seekForPrev(_ key: [UInt8]) {
            key.withUnsafeBytes {
                rocksdb_iter_seek_for_prev(self.raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count)
            }
        }

        /// Moves to the next key. Only valid while ``isValid``.
        public func next() {
            if self.isValid { rocksdb_iter_next(self.raw) }
        }

        /// Moves to the previous key. Only valid while ``isValid``.
        public func previous() {
            if self.isValid { rocksdb_iter_prev(self.raw) }
        }

        /// The current key without copying (empty when not ``isValid``).
        public func withKey<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
            guard self.isValid else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
            var length = 0
            let key = rocksdb_iter_key(self.raw, &length)
            return try body(UnsafeRawBufferPointer(start: key, count: length))
        }

        /// The current value without copying (empty when not ``isValid``).
        public func withValue<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
            guard self.isValid else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
            var length = 0
            let value = rocksdb_iter_value(self.raw, &length)
            return try body(UnsafeRawBufferPointer(start: value, count: length))
        }

        /// A copy of the current key, or `nil` when not ``isValid``.
        public var key: [UInt8]? { self.isValid ? self.withKey { Array($0) } : nil }

        /// A copy of the current value, or `nil` when not ``isValid``.
        public var value: [UInt8]? { self.isValid ? self.withValue { Array($0) } : nil }

        /// Throws the error that made the iterator invalid, if any (an invalid iterator without an error has
        /// simply reached the end of its range).
        public func checkError() throws {
            var error: UnsafeMutablePointer<CChar>? = nil
            rocksdb_iter_get_error(self.raw, &error)
            if let error = RocksDB.takeError(error, "iterator") { throw error }
        }
    }

    // MARK: Internals

    private func acquire() throws -> (OpaquePointer, [OpaquePointer]) {
        try self.state.withLock { state in
            guard !state.closeRequested, let db = state.db else {
                throw StorageError.closed("database \(self.path) is closed")
            }
            state.users += 1
            return (db, state.handles)
        }
    }

    private func release() {
        let toClose = self.state.withLock { state -> (OpaquePointer, [OpaquePointer])? in
            state.users -= 1
            guard state.users == 0, state.closeRequested, let db = state.db else { return nil }
            state.db = nil
            let handles = state.handles
            state.handles = []
            return (db, handles)
        }
        if let (db, handles) = toClose {
            RocksDB.closeNow(db: db, handles: handles)
        }
    }

    private func withHandles<Result>(_ body: (OpaquePointer, [OpaquePointer]) throws -> Result) throws -> Result {
        let (db, handles) = try self.acquire()
        defer { self.release() }
        return try body(db, handles)
    }

    fileprivate static func handle(_ handles: [OpaquePointer], _ family: ColumnFamily) throws -> OpaquePointer {
        guard family.slot >= 0, family.slot < handles.count else {
            throw StorageError.invalidArgument("column family '\(family.name)' does not belong to this database")
        }
        return handles[family.slot]
    }

    private static func closeNow(db: OpaquePointer, handles: [OpaquePointer]) {
        for handle in handles {
            rocksdb_column_family_handle_destroy(handle)
        }
        rocksdb_close(db)
    }

    /// Converts (and frees) a RocksDB error string.
    static func takeError(_ error: UnsafeMutablePointer<CChar>?, _ operation: String) -> StorageError? {
        guard let error else { return nil }
        let message = String(cString: error)
        rocksdb_free(error)
        let code: StorageError.Code
        if message.hasPrefix("Corruption") {
            code = .corruption
        } else if message.hasPrefix("Invalid argument") {
            code = .invalidArgument
        } else if message.hasPrefix("NotFound") {
            code = .notFound
        } else if message.contains("While lock file") || message.contains("lock hold by current process") {
            code = .busy
        } else {
            code = .io
        }
        return StorageError(code: code, message: "rocksdb \(operation): \(message)")
    }
}

/// Calls `body` with a NUL-terminated C string array for `strings`.
private func withCStrings<Result>(
    _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) throws -> Result
) rethrows -> Result {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = duplicates.map { $0.map { UnsafePointer($0) } }
    return try pointers.withUnsafeBufferPointer { buffer in
        // `strings` always contains "default", so the buffer is never empty.
        guard let base = buffer.baseAddress else { preconditionFailure("empty column family list") }
        return try body(base)
    }
}
