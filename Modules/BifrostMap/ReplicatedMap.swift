@_exported import BifrostMacros

/// A key of the map with its value.
public struct MapEntry: Codable, Sendable, Hashable {
    /// The key.
    public var key: String
    /// The value.
    public var value: [UInt8]

    /// Creates an entry.
    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// A change of one key: the value before and after (`nil`: absent).
public struct MapChange: Codable, Sendable, Hashable {
    /// The key.
    public var key: String
    /// The value before the command.
    public var old: [UInt8]?
    /// The value after the command.
    public var new: [UInt8]?

    /// Creates a change.
    public init(key: String, old: [UInt8]?, new: [UInt8]?) {
        self.key = key
        self.old = old
        self.new = new
    }
}

/// The outcome of a compare-and-swap.
public struct MapSwap: Codable, Sendable, Hashable {
    /// Whether the key held the expected value (and now holds the new one).
    public var swapped: Bool
    /// The key's value after the command.
    public var current: [UInt8]?

    /// Creates an outcome.
    public init(swapped: Bool, current: [UInt8]?) {
        self.swapped = swapped
        self.current = current
    }
}

/// One page of a prefix listing.
public struct MapPage: Codable, Sendable, Hashable {
    /// The entries, in key order.
    public var entries: [MapEntry]
    /// The key to pass as `after` for the next page, or `nil` when this is the last page.
    public var next: String?

    /// Creates a page.
    public init(entries: [MapEntry], next: String?) {
        self.entries = entries
        self.next = next
    }
}

/// The built-in replicated map: string keys, byte-string values (UTF-8 text for the CLI and HTTP API).
///
/// Keys compare as `String`s do (two spellings of one character, such as `"é"` and `"e\u{301}"`, are one key) and are
/// kept, listed and snapshotted in their NFC form, in the order of its UTF-8 bytes (`String`'s order for NFC keys).
///
/// Register it on every node (`stateMachines: [(ReplicatedMap.defaultID, ReplicatedMap())]`) and use it through
/// `ReplicatedMap.Client` (`MapClient`). Subscriptions: every insert (`onInserted`), inserts of one key
/// (`onKeyInserted(key)`), every removal (`onRemoved`), removals of one key (`onKeyRemoved(key)`), and changes of one
/// key with old and new values (`onChanged(key)`; insert, update and removal).
@StateMachine
public struct ReplicatedMap: Codable {
    /// The id the `bifrost-map` server registers the map under.
    public static let defaultID: UInt64 = 1

    /// Every insert of a new key.
    public static let onInserted = Subscription<NoPattern, MapEntry>("onInserted")
    /// Inserts of one key (the pattern), with the value.
    public static let onKeyInserted = Subscription<String, [UInt8]>("onKeyInserted")
    /// Every removal, with the value removed.
    public static let onRemoved = Subscription<NoPattern, MapEntry>("onRemoved")
    /// Removals of one key (the pattern), with the value removed.
    public static let onKeyRemoved = Subscription<String, [UInt8]>("onKeyRemoved")
    /// Changes of one key (the pattern): insert, update or removal, with the old and new values.
    public static let onChanged = Subscription<String, MapChange>("onChanged")

    /// The records (key and value in one object) by key: point operations in O(1). It owns the records.
    var table = MapTable()
    /// The same records in key order: listing a page in O(log n + page). Its references do not own: a record leaves
    /// it before the table drops it.
    var keys = SortedKeys<MapRecordRef>()

    /// Creates an empty map.
    public init() {}

    /// The snapshot format's version byte.
    static let snapshotVersion: UInt8 = 1

    // MARK: Commands

    /// Sets `key` to `value`; returns the previous value.
    @Command public mutating func set(key: String, value: [UInt8], context: RaftApplyContext) -> [UInt8]? {
        store(key: key, value: value, context: context) { $0.map(Array.init) }
    }

    /// Sets `key` to `value` as ``set(key:value:context:)`` does, with the same events, and returns nothing, as
    /// etcd's put without `prev_kv`: the cheaper write when the previous value is not wanted. The reply carries no
    /// value, and the previous value is never copied out of the map (the events copy it straight from the record).
    /// The load generator's writes use it.
    @Command public mutating func put(key: String, value: [UInt8], context: RaftApplyContext) {
        store(key: key, value: value, context: context) { _ in }
    }

    /// Sets `key` to `value` only if the key is absent; returns the value the key had (`nil`: inserted).
    @Command public mutating func insertIfAbsent(key: String, value: [UInt8], context: RaftApplyContext) -> [UInt8]? {
        if let existing = table.record(of: key) { return existing.value }
        add(MapRecord.make(key: key, value: value))
        raiseChange(key: key, old: nil, new: value, context: context)
        return nil
    }

    /// Removes `key`; returns the value it had.
    @Command public mutating func remove(key: String, context: RaftApplyContext) -> [UInt8]? {
        guard let old = delete(key) else { return nil }
        raiseChange(key: key, old: old, new: nil, context: context)
        return old
    }

    /// Sets `key` to `new` (or removes it, for `nil`) if it holds `expected` (`nil`: absent).
    @Command public mutating func compareAndSwap(
        key: String, expected: [UInt8]?, new: [UInt8]?, context: RaftApplyContext
    ) -> MapSwap {
        let current = table.record(of: key)?.value
        guard current == expected else { return MapSwap(swapped: false, current: current) }
        if current != new {
            if let new {
                store(key: key, value: new, context: context) { _ in }
            } else {
                delete(key)
                raiseChange(key: key, old: current, new: nil, context: context)
            }
        }
        return MapSwap(swapped: true, current: new)
    }

    /// Sets many keys in one command (one log entry); returns how many keys were new.
    @Command public mutating func putAll(_ entries: [MapEntry], context: RaftApplyContext) -> UInt64 {
        var inserted: UInt64 = 0
        for entry in entries {
            let added = store(key: entry.key, value: entry.value, context: context) { $0 == nil }
            if added { inserted += 1 }
        }
        return inserted
    }

    /// Removes every key; returns how many there were. Raises a removal event per key.
    @Command public mutating func clear(context: RaftApplyContext) -> UInt64 {
        let (records, order) = (table, keys)
        table.removeAll()
        keys.removeAll()
        // `records` keeps the records alive while the index's references are read.
        withExtendedLifetime(records) {
            for record in order.all {
                raiseChange(key: record.key, old: record.value, new: nil, context: context)
            }
        }
        return UInt64(order.count)
    }

    // MARK: Queries

    /// The value of `key`.
    @Query public func get(key: String) -> [UInt8]? { table.record(of: key)?.value }

    /// Whether `key` is present.
    @Query public func contains(key: String) -> Bool { table.slot(of: key) != nil }

    /// The number of keys.
    @Query public func count() -> UInt64 { UInt64(table.count) }

    /// The keys starting with `prefix`, in order, after the key `after` (exclusive), at most `limit` (capped at
    /// 10,000) of them. Costs O(log n + page).
    @Query public func list(prefix: String, after: String?, limit: Int) -> MapPage {
        let limit = min(max(limit, 1), 10_000)
        // Start at the first key >= prefix, or > after when that is further.
        let start = MapRecord.make(key: prefix, value: [])
        var position = keys.position(of: start.ref)
        if let after, after >= prefix {
            let probe = MapRecord.make(key: after, value: [])
            position = withExtendedLifetime(probe) { keys.position(of: probe.ref, strictly: true) }
        }
        var entries: [MapEntry] = []
        entries.reserveCapacity(min(limit, 256))
        while position != keys.endPosition {
            let record = keys[position]
            let key = record.key
            if key.hasPrefix(prefix) {
                // One match past a full page: there is a next page.
                if entries.count == limit { return MapPage(entries: entries, next: entries.last?.key) }
                entries.append(MapEntry(key: key, value: record.value))
            } else if !start.storage.withKeyBytes({ prefix in record.storage.withKeyBytes { $0.starts(with: prefix) } })
            {
                // Past the keys whose bytes start with the prefix (a key that does but does not match `hasPrefix`
                // continues the prefix's last character with combining marks; matches may follow it).
                break
            }
            position = keys.position(after: position)
        }
        return MapPage(entries: entries, next: nil)
    }

    // MARK: Snapshot

    /// The image: a version byte (1), a varint count, then each key (a length-prefixed UTF-8 string) and its value
    /// (a length-prefixed byte string), in key order. Canonical: equal maps give equal bytes.
    public func snapshot() throws(RaftStateMachineError) -> [UInt8] {
        var size = 1 + WireWriter.varintSize(UInt64(table.count))
        for record in keys.all {
            record.storage.withKeyBytes { size += WireWriter.varintSize(UInt64($0.count)) + $0.count }
            record.storage.withValueBytes { size += WireWriter.varintSize(UInt64($0.count)) + $0.count }
        }
        // Written straight into the array that is returned: a ByteBuffer would take a second copy of the image
        // (and a second set of fresh pages to fault in), on the snapshot thread, once per snapshot.
        return [UInt8](unsafeUninitializedCapacity: size) { out, initialized in
            var position = 0
            func putVarint(_ value: UInt64) {
                position = Wire.storeVarint(value, into: UnsafeMutableRawBufferPointer(out), at: position)
            }
            // A key is written as a String is: its length, then its UTF-8 bytes.
            func putBytes(_ bytes: UnsafeBufferPointer<UInt8>) {
                putVarint(UInt64(bytes.count))
                precondition(position + bytes.count <= out.count, "snapshot size miscomputed")
                if let source = bytes.baseAddress, let target = out.baseAddress {
                    (target + position).update(from: source, count: bytes.count)
                }
                position += bytes.count
            }
            precondition(out.count >= 1, "snapshot size miscomputed")
            out[0] = Self.snapshotVersion
            position = 1
            putVarint(UInt64(table.count))
            for record in keys.all {
                record.storage.withKeyBytes { putBytes($0) }
                record.storage.withValueBytes { putBytes($0) }
            }
            initialized = position
        }
    }

    /// Replaces the map with the image ``snapshot()`` wrote. A malformed image (unknown version, truncated, trailing
    /// bytes, invalid UTF-8, keys out of order or repeated) is `corruptSnapshot` and leaves the map unchanged.
    public mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {
        let limits = WireLimits(maxBytesLength: snapshot.count, maxCollectionCount: snapshot.count, maxDepth: 4)
        var reader = WireReader(bytes: snapshot, limits: limits)
        do {
            let version = try reader.readByte()
            guard version == Self.snapshotVersion else {
                throw WireError(code: .invalidValue, message: "unknown version \(version)")
            }
            let count = try reader.readCount(of: "the map")
            // Each entry takes at least two bytes: never reserve more than the image can hold.
            var builder = SortedMapBuilder(capacity: min(count, reader.remaining / 2))
            for _ in 0..<count {
                let key = try reader.read(String.self)
                guard builder.append(MapRecord.make(key: key, value: try reader.readLengthPrefixedBytes())) else {
                    throw WireError(code: .invalidValue, message: "key \(builder.count) is out of order or repeated")
                }
            }
            guard reader.isAtEnd else {
                throw WireError(code: .invalidValue, message: "\(reader.remaining) bytes after the entries")
            }
            self.table = builder.table
            self.keys = builder.keys
        } catch {
            throw RaftStateMachineError(code: .corruptSnapshot, message: "ReplicatedMap snapshot: \(error)")
        }
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case entries }

    /// Decodes the entries in key order (the ``encode(to:)`` form); rejects keys out of order or repeated.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let entries = try container.decode([MapEntry].self, forKey: .entries)
        var builder = SortedMapBuilder(capacity: entries.count)
        for entry in entries where !builder.append(MapRecord.make(key: entry.key, value: entry.value)) {
            throw DecodingError.dataCorruptedError(
                forKey: .entries, in: container, debugDescription: "keys out of order or repeated")
        }
        table = builder.table
        keys = builder.keys
    }

    /// Encodes the entries in key order (canonical).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(keys.all.map { MapEntry(key: $0.key, value: $0.value) }, forKey: .entries)
    }

    // MARK: Storage

    /// Sets `key` to `value` and raises the change's events (copying the replaced value straight from the record);
    /// returns what `keep` makes of the replaced value's bytes (`nil`: the key was absent).
    private mutating func store<Kept>(
        key: String, value: [UInt8], context: RaftApplyContext, keep: (UnsafeBufferPointer<UInt8>?) -> Kept
    ) -> Kept {
        let (kept, existed, change) = store(key: key, value: value) { old, new in
            (keep(old), old != nil, MapChangeEvents.make(key: key, old: old, new: new))
        }
        raise(change, old: existed, new: true, context: context)
        return kept
    }

    /// Sets `key` to `value`, first handing `observe` the value it replaces (`nil`: the key was absent) and the new
    /// one, and returns what `observe` returned. An update writes over the record's value when the map alone holds
    /// the record and the new value fits, and otherwise replaces the record (in the table and in the index).
    private mutating func store<Seen>(
        key: String, value: [UInt8],
        observe: (_ old: UnsafeBufferPointer<UInt8>?, _ new: UnsafeBufferPointer<UInt8>) -> Seen
    ) -> Seen {
        MapKey.withBytes(of: key) { keyBytes in
            value.withUnsafeBufferPointer { valueBytes in
                let hash = MapKey.hash(keyBytes)
                guard let slot = table.slot(of: keyBytes, hash: hash) else {
                    add(MapRecord.make(keyBytes: keyBytes, hash: hash, value: valueBytes))
                    return observe(nil, valueBytes)
                }
                // Read in place: the record must stay uniquely referenced for the overwrite.
                let seen = table.withValueBytes(at: slot) { observe($0, valueBytes) }
                if table.overwriteValue(at: slot, with: valueBytes) { return seen }
                let replaced = table.record(at: slot)
                let record = MapRecord.make(keyBytes: keyBytes, hash: hash, value: valueBytes)
                // The old record stays alive until the index no longer refers to it.
                withExtendedLifetime(replaced) {
                    table.replace(at: slot, with: record)
                    keys.replace(record.ref)
                }
                return seen
            }
        }
    }

    /// Adds the record of a key that is absent.
    private mutating func add(_ record: MapRecord) {
        table.insert(record)
        keys.insert(record.ref)
    }

    /// Removes `key`; returns the value it had.
    @discardableResult
    private mutating func delete(_ key: String) -> [UInt8]? {
        guard let slot = table.slot(of: key), let record = table.record(at: slot) else { return nil }
        withExtendedLifetime(record) {
            table.remove(at: slot)
            keys.remove(record.ref)
        }
        return record.value
    }

    // MARK: Events

    /// Raises the events of one change. Every applied command raises them (the node keeps them for watchers that
    /// resume), so they share one ``MapChangeEvents``, which encodes a pattern or payload only when a watcher reads
    /// it.
    private func raiseChange(key: String, old: [UInt8]?, new: [UInt8]?, context: RaftApplyContext) {
        raise(MapChangeEvents.make(key: key, old: old, new: new), old: old != nil, new: new != nil, context: context)
    }

    /// Raises the events of `change`, whose key had a value before (`old`) and has one after (`new`).
    private func raise(_ change: MapChangeEvents, old: Bool, new: Bool, context: RaftApplyContext) {
        if new, !old {
            context.notify(kind: Self.onInserted.kind, content: change)
            context.notify(kind: Self.onKeyInserted.kind, content: change)
        }
        if old, !new {
            context.notify(kind: Self.onRemoved.kind, content: change)
            context.notify(kind: Self.onKeyRemoved.kind, content: change)
        }
        context.notify(kind: Self.onChanged.kind, content: change)
    }

    /// The keyed-frame encoding of a struct whose first field is `key` (a string) and whose other fields are
    /// optional byte strings, as `WireEncoder` writes `MapEntry` and `MapChange`.
    static func eventPayload(key: String, fields: [(name: String, value: [UInt8]?)]) -> [UInt8] {
        var writer = WireWriter(capacity: 32 + key.utf8.count + fields.reduce(0) { $0 + ($1.value?.count ?? 0) })
        writer.writeFramed { frame in
            "key".encode(to: &frame)
            frame.writeFramed { key.encode(to: &$0) }
            for (name, value) in fields {
                guard let value else { continue }
                name.encode(to: &frame)
                frame.writeFramed { value.encode(to: &$0) }
            }
        }
        return writer.buffer.readBytes(length: writer.buffer.readableBytes) ?? []
    }
}

/// The events of one change to one key, encoded when a watcher reads them: the very bytes `WireEncoder` gives
/// the subscriptions' types (a keyed frame for `MapEntry` and `MapChange`: field name, then the length-prefixed
/// value, a nil field left out; `ReplicatedMapTests` checks that the bytes are the same).
///
/// One allocation holds the key's UTF-8 bytes, then the old value's, then the new value's. Every node keeps the
/// events of the last `subscriptionReplayEvents` changes and frees the oldest one with each change: one object per
/// change, long out of the cache by then, costs one miss and one free there, where a key, two arrays and their
/// holder cost four.
///
/// `@unchecked Sendable`: the bytes are written once, by ``make(key:old:new:)``, before the object is shared, and
/// only read after.
struct MapChangeEvents: RaftEventContent, @unchecked Sendable {
    /// The lengths of the three parts; a value that is `nil` has length -1.
    struct Header {
        var keyCount: Int32
        var oldCount: Int32
        var newCount: Int32
    }

    /// The allocation: the header, then the bytes.
    final class Storage: ManagedBuffer<Header, UInt8> {}

    private let storage: Storage

    /// The events of `key` changing from `old` to `new` (`nil`: absent).
    static func make(key: String, old: [UInt8]?, new: [UInt8]?) -> MapChangeEvents {
        func withBytes<R>(_ array: [UInt8]?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
            guard let array else { return body(nil) }
            return array.withUnsafeBufferPointer { body($0) }
        }
        return withBytes(old) { old in withBytes(new) { new in make(key: key, old: old, new: new) } }
    }

    /// The events of `key` changing from the bytes `old` to the bytes `new` (`nil`: absent).
    static func make(
        key: String, old: UnsafeBufferPointer<UInt8>?, new: UnsafeBufferPointer<UInt8>?
    ) -> MapChangeEvents {
        var key = key
        return key.withUTF8 { keyBytes in
            let header = Header(
                keyCount: Int32(keyBytes.count), oldCount: Int32(old?.count ?? -1), newCount: Int32(new?.count ?? -1))
            let capacity = keyBytes.count + (old?.count ?? 0) + (new?.count ?? 0)
            // `create` called on the subclass returns an instance of it.
            let storage = unsafeDowncast(Storage.create(minimumCapacity: capacity) { _ in header }, to: Storage.self)
            storage.withUnsafeMutablePointerToElements { bytes in
                var at = bytes
                func append(_ part: UnsafeBufferPointer<UInt8>) {
                    if let base = part.baseAddress { at.initialize(from: base, count: part.count) }
                    at += part.count
                }
                append(keyBytes)
                if let old { append(old) }
                if let new { append(new) }
            }
            return MapChangeEvents(storage: storage)
        }
    }

    /// The number of key and value bytes after the header.
    private var partsCount: Int {
        storage.withUnsafeMutablePointerToHeader { header in
            Int(header.pointee.keyCount) + max(Int(header.pointee.oldCount), 0) + max(Int(header.pointee.newCount), 0)
        }
    }

    /// The compact form the replay buffer keeps: the three lengths (little-endian `Int32`s), then the bytes.
    var compactSize: Int? { 12 + partsCount }

    func writeCompact(to bytes: UnsafeMutableRawBufferPointer) {
        storage.withUnsafeMutablePointers { header, parts in
            bytes.storeBytes(of: header.pointee.keyCount.littleEndian, toByteOffset: 0, as: Int32.self)
            bytes.storeBytes(of: header.pointee.oldCount.littleEndian, toByteOffset: 4, as: Int32.self)
            bytes.storeBytes(of: header.pointee.newCount.littleEndian, toByteOffset: 8, as: Int32.self)
            let count = bytes.count - 12
            if count > 0 { bytes.baseAddress?.advanced(by: 12).copyMemory(from: parts, byteCount: count) }
        }
    }

    static func readCompact(from bytes: UnsafeRawBufferPointer) -> MapChangeEvents? {
        guard bytes.count >= 12 else { return nil }
        let count = { (offset: Int) in
            Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
        }
        let (keyCount, oldCount, newCount) = (count(0), count(4), count(8))
        guard keyCount >= 0, oldCount >= -1, newCount >= -1,
            12 + keyCount + max(oldCount, 0) + max(newCount, 0) == bytes.count
        else { return nil }
        let parts = UnsafeRawBufferPointer(rebasing: bytes[12...]).bindMemory(to: UInt8.self)
        func part(_ start: Int, _ length: Int) -> UnsafeBufferPointer<UInt8>? {
            length < 0 ? nil : UnsafeBufferPointer(rebasing: parts[start..<(start + length)])
        }
        let key = String(decoding: parts[0..<keyCount], as: UTF8.self)
        return make(key: key, old: part(keyCount, oldCount), new: part(keyCount + max(oldCount, 0), newCount))
    }

    /// The key.
    var key: String {
        storage.withUnsafeMutablePointers { header, bytes in
            String(decoding: UnsafeBufferPointer(start: bytes, count: Int(header.pointee.keyCount)), as: UTF8.self)
        }
    }

    /// The value before the change (`nil`: the key was absent).
    var old: [UInt8]? { value(after: \.keyCount, counted: \.oldCount) }

    /// The value after the change (`nil`: the key was removed).
    var new: [UInt8]? { value(after: \.keyCount, \.oldCount, counted: \.newCount) }

    /// A copy of the part whose length is at `count` (`nil` for -1), which follows the parts at `before`.
    private func value(after before: KeyPath<Header, Int32>..., counted count: KeyPath<Header, Int32>) -> [UInt8]? {
        storage.withUnsafeMutablePointers { header, bytes in
            let length = Int(header.pointee[keyPath: count])
            guard length >= 0 else { return nil }
            let start = before.reduce(0) { $0 + max(Int(header.pointee[keyPath: $1]), 0) }
            return Array(UnsafeBufferPointer(start: bytes + start, count: length))
        }
    }

    /// The key for `onKeyInserted`, `onKeyRemoved` and `onChanged`; none for `onInserted` and `onRemoved`.
    func pattern(kind: UInt64) -> [UInt8] {
        switch kind {
        case ReplicatedMap.onInserted.kind, ReplicatedMap.onRemoved.kind: []
        default: Wire.encodeToBytes(key)
        }
    }

    func payload(kind: UInt64) -> [UInt8] {
        switch kind {
        case ReplicatedMap.onInserted.kind: ReplicatedMap.eventPayload(key: key, fields: [("value", new)])
        case ReplicatedMap.onKeyInserted.kind: Wire.encodeToBytes(new ?? [])
        case ReplicatedMap.onRemoved.kind: ReplicatedMap.eventPayload(key: key, fields: [("value", old)])
        case ReplicatedMap.onKeyRemoved.kind: Wire.encodeToBytes(old ?? [])
        default: ReplicatedMap.eventPayload(key: key, fields: [("old", old), ("new", new)])
        }
    }
}

/// The typed client of ``ReplicatedMap``.
public typealias MapClient = ReplicatedMap.Client
