import BifrostWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The header of a ``MapRecord``: the key's hash and the lengths of the key and the value.
struct MapRecordHeader {
    var hash: Int
    var keyCount: Int32
    var valueCount: Int32
}

/// One key and its value in a single allocation: the key's UTF-8 bytes in NFC form, then the value's bytes.
///
/// Storing both in one object is what keeps ``ReplicatedMap`` dense: a 16-byte key and a 100-byte value take one
/// 160-byte allocation, where a `String` key (heap-allocated past 15 bytes) and an `[UInt8]` value took two, of 64
/// and 144 bytes, plus 24 bytes per hash-table slot instead of 8. See `docs/benchmarks.md`, "Memory".
///
/// Keys are kept in NFC form, so that comparing their bytes gives exactly `String`'s equality (canonical
/// equivalence), and an order that is `String`'s for keys spelled in NFC (the scalar order, which UTF-8 preserves)
/// and total for every key.
///
/// This is the owning reference, held by the ``MapTable``; the ordered index holds ``MapRecordRef``s, which do not
/// own. A record's value is changed in place only while this is its only reference
/// (``overwriteValueIfUnique(_:)``): a copy of the map (a snapshot being encoded) shares records, and then an update
/// replaces the record instead.
///
/// `@unchecked Sendable`: the storage is read by any holder, and written only by the holder of its only reference.
struct MapRecord: @unchecked Sendable {
    /// The allocation: the header, then the key's bytes and the value's bytes.
    final class Storage: ManagedBuffer<MapRecordHeader, UInt8> {}

    private(set) var storage: Storage

    /// A record of `key` (normalized to NFC) and `value`.
    static func make(key: String, value: [UInt8]) -> MapRecord {
        MapKey.withBytes(of: key) { keyBytes in
            value.withUnsafeBufferPointer { make(keyBytes: keyBytes, hash: MapKey.hash(keyBytes), value: $0) }
        }
    }

    /// A record of `keyBytes` (NFC UTF-8, whose hash is `hash`) and `value`.
    static func make(
        keyBytes: UnsafeBufferPointer<UInt8>, hash: Int, value: UnsafeBufferPointer<UInt8>
    ) -> MapRecord {
        let header = MapRecordHeader(hash: hash, keyCount: Int32(keyBytes.count), valueCount: Int32(value.count))
        let buffer = Storage.create(minimumCapacity: keyBytes.count + value.count) { _ in header }
        // `create` called on the subclass returns an instance of it.
        let storage = unsafeDowncast(buffer, to: Storage.self)
        storage.withUnsafeMutablePointerToElements { elements in
            if let base = keyBytes.baseAddress { elements.initialize(from: base, count: keyBytes.count) }
            if let base = value.baseAddress { (elements + keyBytes.count).initialize(from: base, count: value.count) }
        }
        return MapRecord(storage: storage)
    }

    /// The non-owning reference the ordered index keeps.
    var ref: MapRecordRef { MapRecordRef(storage: storage) }
    /// The key.
    var key: String { storage.key }
    /// A copy of the value.
    var value: [UInt8] { storage.value }

    /// Writes `value` over the current one when nothing else references this record and the allocation has room;
    /// returns whether it did.
    mutating func overwriteValueIfUnique(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard isKnownUniquelyReferenced(&storage) else { return false }
        return storage.withUnsafeMutablePointers { header, elements in
            let keyCount = Int(header.pointee.keyCount)
            guard keyCount + value.count <= storage.capacity else { return false }
            if let base = value.baseAddress { (elements + keyCount).update(from: base, count: value.count) }
            header.pointee.valueCount = Int32(value.count)
            return true
        }
    }
}

/// A reference to a ``MapRecord`` that does not keep it alive: the ordered index's element (24 bytes, no reference
/// counting). The map removes a record from the index before the last owning reference goes away.
///
/// It carries the key's first 16 bytes, so that comparing two keys that differ there (every 16-byte key, and most
/// others) reads no record: a search of the index touches only the index's own contiguous storage, where reading
/// each probed record's key cost a cache miss per step.
///
/// `@unchecked Sendable`: only ever read (see ``MapRecord``).
struct MapRecordRef: KeyOrdered, @unchecked Sendable {
    unowned(unsafe) let storage: MapRecord.Storage
    /// The key's first 16 bytes, zero-padded, as two big-endian words: ``MapKey/prefix(of:)``.
    let prefix: MapKey.Prefix

    init(storage: MapRecord.Storage) {
        self.storage = storage
        self.prefix = storage.withKeyBytes(MapKey.prefix(of:))
    }

    /// The key.
    var key: String { storage.key }
    /// A copy of the value.
    var value: [UInt8] { storage.value }

    func precedes(_ other: MapRecordRef) -> Bool {
        if prefix != other.prefix { return prefix < other.prefix }
        return storage.withKeyBytes { mine in other.storage.withKeyBytes { MapKey.compare(mine, $0) < 0 } }
    }

    func hasSameKey(as other: MapRecordRef) -> Bool {
        storage === other.storage
            || (prefix == other.prefix && storage.hash == other.storage.hash
                && other.storage.withKeyBytes { storage.hasKey($0) })
    }
}

extension MapRecord.Storage {
    /// The key's hash (``MapKey/hash(_:)`` of its bytes).
    var hash: Int { withUnsafeMutablePointerToHeader { $0.pointee.hash } }

    /// Calls `body` with the key's bytes.
    func withKeyBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeMutablePointers { header, elements in
            try body(UnsafeBufferPointer(start: elements, count: Int(header.pointee.keyCount)))
        }
    }

    /// Calls `body` with the value's bytes.
    func withValueBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeMutablePointers { header, elements in
            try body(
                UnsafeBufferPointer(
                    start: elements + Int(header.pointee.keyCount), count: Int(header.pointee.valueCount)))
        }
    }

    /// The key.
    var key: String { withKeyBytes { String(decoding: $0, as: UTF8.self) } }

    /// A copy of the value.
    var value: [UInt8] { withValueBytes { Array($0) } }

    /// Whether the key's bytes are `bytes`.
    func hasKey(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        withKeyBytes { $0.count == bytes.count && MapKey.compare($0, bytes) == 0 }
    }
}

/// Key bytes: NFC normalization, hashing and ordering.
enum MapKey {
    /// Calls `body` with the NFC UTF-8 bytes of `key` (without copying an ASCII key, which is always NFC).
    static func withBytes<R>(of key: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        var key = key
        if key.withUTF8(isASCII) { return try key.withUTF8(body) }
        return try Array(key._nfcCodeUnits).withUnsafeBufferPointer(body)
    }

    /// Whether every byte is below 0x80 (``Wire/isASCII(_:)``; every write checks its key).
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        Wire.isASCII(UnsafeRawBufferPointer(bytes))
    }

    /// The hash of key bytes (seeded per process: the table's layout is never observable).
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        return hasher.finalize()
    }

    /// The first 16 bytes of a key, zero-padded, as two big-endian words. Prefixes order keys as their bytes do,
    /// up to ties: if `prefix(of: a) < prefix(of: b)` then `a` comes before `b` (``compare(_:_:)``). At the first
    /// position where two padded prefixes differ, either both keys have a byte there, or the shorter key has ended
    /// and the other's byte is not zero, so the shorter key is a prefix of the other. Equal prefixes decide nothing.
    struct Prefix: Hashable, Comparable, Sendable {
        var high: UInt64
        var low: UInt64

        static func < (a: Prefix, b: Prefix) -> Bool {
            a.high != b.high ? a.high < b.high : a.low < b.low
        }
    }

    /// The ``Prefix`` of key bytes.
    static func prefix(of bytes: UnsafeBufferPointer<UInt8>) -> Prefix {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { destination in
            destination.copyMemory(from: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.prefix(16))))
        }
        return Prefix(high: UInt64(bigEndian: words.0), low: UInt64(bigEndian: words.1))
    }

    /// Byte-wise order: negative, zero or positive.
    static func compare(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        let common = min(a.count, b.count)
        if common > 0, let left = a.baseAddress, let right = b.baseAddress {
            let order = memcmp(left, right, common)
            if order != 0 { return Int(order) }
        }
        return a.count - b.count
    }
}

/// The records of a map by key: an open-addressing hash table (linear probing, at most 3/4 full, deletion by
/// backward shift) of owning record references, 8 bytes a slot. A value type: copies share the slots until one
/// changes.
struct MapTable: Sendable {
    private var slots: [MapRecord?] = []
    /// The number of records.
    private(set) var count = 0

    /// An empty table.
    init() {}

    /// The slot of the key whose NFC bytes are `bytes` and hash is `hash`.
    func slot(of bytes: UnsafeBufferPointer<UInt8>, hash: Int) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var slot = hash & mask
        while let record = slots[slot] {
            if record.storage.hash == hash, record.storage.hasKey(bytes) { return slot }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// The slot of `key`.
    func slot(of key: String) -> Int? {
        MapKey.withBytes(of: key) { slot(of: $0, hash: MapKey.hash($0)) }
    }

    /// The record in `slot`.
    func record(at slot: Int) -> MapRecord? { slots[slot] }

    /// The record of `key`.
    func record(of key: String) -> MapRecord? { slot(of: key).flatMap { slots[$0] } }

    /// Adds `record`, whose key must be absent.
    mutating func insert(_ record: MapRecord) {
        if (count + 1) * 4 > slots.count * 3 { grow(to: Swift.max(16, slots.count * 2)) }
        place(record)
        count += 1
    }

    /// Calls `body` with the value bytes of the record in `slot` (`nil` for an empty slot), read in place.
    func withValueBytes<R>(at slot: Int, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        guard let record = slots[slot] else { return body(nil) }
        return record.storage.withValueBytes { body($0) }
    }

    /// Puts `record` in `slot`, which holds the record of the same key.
    mutating func replace(at slot: Int, with record: MapRecord) {
        slots[slot] = record
    }

    /// Writes `value` over the value of the record in `slot` when the table holds its only reference (see
    /// ``MapRecord/overwriteValueIfUnique(_:)``); returns whether it did.
    mutating func overwriteValue(at slot: Int, with value: UnsafeBufferPointer<UInt8>) -> Bool {
        slots[slot]?.overwriteValueIfUnique(value) ?? false
    }

    /// Removes the record in `slot`, moving later records of the same probe run back so no lookup misses them.
    mutating func remove(at slot: Int) {
        let mask = slots.count - 1
        var hole = slot
        var next = (hole + 1) & mask
        while let record = slots[next] {
            let home = record.storage.hash & mask
            // The record may move to the hole when the hole lies between its home slot and where it is now.
            if (hole &- home) & mask < (next &- home) & mask {
                slots[hole] = record
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = nil
        count -= 1
    }

    /// Makes room for `capacity` records without growing.
    mutating func reserveCapacity(_ capacity: Int) {
        var size = Swift.max(16, slots.count)
        while capacity * 4 > size * 3 { size *= 2 }
        if size > slots.count { grow(to: size) }
    }

    /// Removes every record.
    mutating func removeAll() {
        slots = []
        count = 0
    }

    private mutating func grow(to size: Int) {
        let old = slots
        slots = Array(repeating: nil, count: size)
        for case let record? in old { place(record) }
    }

    private mutating func place(_ record: MapRecord) {
        let mask = slots.count - 1
        var slot = record.storage.hash & mask
        while slots[slot] != nil { slot = (slot + 1) & mask }
        slots[slot] = record
    }
}

/// A map's table and ordered index built from records that arrive in strictly increasing key order (a snapshot
/// image, the `Codable` form), without sorting.
struct SortedMapBuilder {
    private(set) var table = MapTable()
    private var sorted: [MapRecordRef] = []

    /// A builder with room for `capacity` records.
    init(capacity: Int) {
        table.reserveCapacity(capacity)
        sorted.reserveCapacity(capacity)
    }

    /// The number of records added.
    var count: Int { sorted.count }

    /// Adds `record`; returns `false`, adding nothing, when its key does not come after the previous one's.
    mutating func append(_ record: MapRecord) -> Bool {
        if let previous = sorted.last, !previous.precedes(record.ref) { return false }
        table.insert(record)
        sorted.append(record.ref)
        return true
    }

    /// The ordered index of the records added (the table owns them).
    var keys: SortedKeys<MapRecordRef> { SortedKeys(sorted: sorted) }
}
