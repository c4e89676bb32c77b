import NIOCore

/// A type that writes itself in Bifrost's binary wire format.
///
/// Conformances must be *canonical*: equal values write equal bytes, in every process and build configuration.
/// The built-in conformances are: integers (LEB128 varints, zigzag for signed; `UInt8` and `Int8` as one raw
/// byte), `Bool`, `Float`, `Double`, `String`, byte strings (`[UInt8]`, `ByteBuffer`), `Optional`, `Array`,
/// `Dictionary`, `Set`, and enums with a raw value. Any `Codable` type is encoded through ``WireEncoder``.
public protocol WireEncodable {
    /// Appends this value to `writer`.
    func encode(to writer: inout WireWriter)
}

/// A type that reads itself from Bifrost's binary wire format.
///
/// Implementations must throw a ``WireError`` on any input they cannot decode, and must read nested values with
/// ``WireReader/read(_:)`` so that nesting limits apply.
public protocol WireDecodable {
    /// Reads a value from `reader`, advancing it past the value's bytes.
    init(from reader: inout WireReader) throws(WireError)
}

/// A type that is both ``WireEncodable`` and ``WireDecodable``.
public typealias WireCodable = WireDecodable & WireEncodable

// MARK: - Top-level helpers

/// Entry points for encoding and decoding ``WireCodable`` values.
public enum Wire {
    /// Encodes `value` into a new buffer.
    @inlinable
    public static func encode<Value: WireEncodable>(_ value: Value, capacity: Int = 64) -> ByteBuffer {
        var writer = WireWriter(capacity: capacity)
        value.encode(to: &writer)
        return writer.buffer
    }

    /// Appends `value` to `bytes` as an unsigned LEB128 varint, the bytes ``WireWriter/writeVarint(_:)`` writes.
    @inlinable
    public static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: 10, alignment: 1) { scratch in
            let count = storeVarint(value, into: scratch, at: 0)
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[..<count]))
        }
    }

    /// Stores `value` as an unsigned LEB128 varint into `bytes` at `offset` and returns the offset after it. The
    /// caller makes room: ``WireWriter/varintSize(_:)`` bytes, at most 10 (checked: it traps rather than write out
    /// of bounds).
    @inlinable
    @discardableResult
    public static func storeVarint(_ value: UInt64, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        precondition(
            offset >= 0 && (bytes.count - offset >= 10 || bytes.count - offset >= WireWriter.varintSize(value)),
            "no room for a varint")
        var rest = value
        var position = offset
        while rest >= 0x80 {
            bytes[position] = UInt8(truncatingIfNeeded: rest) | 0x80
            rest >>= 7
            position += 1
        }
        bytes[position] = UInt8(truncatingIfNeeded: rest)
        return position + 1
    }

    /// Whether every byte is below 0x80 (ASCII, so valid UTF-8 in NFC form), read eight bytes at a time: every
    /// applied write checks its key's bytes.
    @inlinable
    public static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var offset = 0
        var high: UInt64 = 0
        while offset + 8 <= bytes.count {
            high |= base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < bytes.count {
            high |= UInt64(bytes[offset])
            offset += 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }

    /// Encodes `value` into a new byte array (`capacity`: the size of the buffer it is first written into).
    @inlinable
    public static func encodeToBytes<Value: WireEncodable>(_ value: Value, capacity: Int = 64) -> [UInt8] {
        var buffer = encode(value, capacity: capacity)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Decodes one `Value` that must span every readable byte of `buffer`.
    @inlinable
    public static func decode<Value: WireDecodable>(
        _ type: Value.Type = Value.self,
        from buffer: ByteBuffer,
        limits: WireLimits = .default
    ) throws(WireError) -> Value {
        var reader = WireReader(buffer: buffer, limits: limits)
        let value = try reader.read(Value.self)
        try reader.expectEnd(of: Value.self)
        return value
    }

    /// Decodes one `Value` that must span every byte of `bytes`.
    @inlinable
    public static func decode<Value: WireDecodable, Bytes: Sequence<UInt8>>(
        _ type: Value.Type = Value.self,
        fromBytes bytes: Bytes,
        limits: WireLimits = .default
    ) throws(WireError) -> Value {
        try decode(type, from: ByteBuffer(bytes: bytes), limits: limits)
    }
}

// MARK: - Integers

extension UInt8: WireCodable {
    @inlinable public func encode(to writer: inout WireWriter) { writer.writeByte(self) }
    @inlinable public init(from reader: inout WireReader) throws(WireError) { self = try reader.readByte() }
}

extension Int8: WireCodable {
    @inlinable public func encode(to writer: inout WireWriter) { writer.writeByte(UInt8(bitPattern: self)) }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        self = Int8(bitPattern: try reader.readByte())
    }
}

/// Unsigned integers wider than a byte are varints.
public protocol _WireVarintUnsigned: FixedWidthInteger, UnsignedInteger, WireCodable {}
/// Signed integers wider than a byte are zigzag varints.
public protocol _WireVarintSigned: FixedWidthInteger, SignedInteger, WireCodable {}

extension _WireVarintUnsigned {
    @inlinable public func encode(to writer: inout WireWriter) { writer.writeVarint(UInt64(self)) }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readVarint()
        guard let value = Self(exactly: raw) else {
            throw WireError(code: .overflow, message: "\(raw) does not fit \(Self.self)")
        }
        self = value
    }
}

extension _WireVarintSigned {
    @inlinable public func encode(to writer: inout WireWriter) { writer.writeZigZag(Int64(self)) }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readZigZag()
        guard let value = Self(exactly: raw) else {
            throw WireError(code: .overflow, message: "\(raw) does not fit \(Self.self)")
        }
        self = value
    }
}

extension UInt16: _WireVarintUnsigned {}
extension UInt32: _WireVarintUnsigned {}
extension UInt64: _WireVarintUnsigned {}
extension UInt: _WireVarintUnsigned {}
extension Int16: _WireVarintSigned {}
extension Int32: _WireVarintSigned {}
extension Int64: _WireVarintSigned {}
extension Int: _WireVarintSigned {}

// MARK: - Bool and floating point

extension Bool: WireCodable {
    @inlinable public func encode(to writer: inout WireWriter) { writer.writeByte(self ? 1 : 0) }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        switch try reader.readByte() {
        case 0: self = false
        case 1: self = true
        case let other: throw WireError(code: .invalidValue, message: "Bool byte \(other) is neither 0 nor 1")
        }
    }
}

extension Double: WireCodable {
    /// Eight bytes, little-endian IEEE 754. Every NaN is written as the one canonical quiet NaN, so that the
    /// encoding stays canonical; `-0.0` and `0.0` keep their distinct bit patterns.
    @inlinable public func encode(to writer: inout WireWriter) {
        let bits = isNaN ? Double.nan.bitPattern : bitPattern
        writer.buffer.writeInteger(bits, endianness: .little)
    }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        guard let bits = reader.buffer.readInteger(endianness: .little, as: UInt64.self) else {
            throw .truncated("a Double")
        }
        self = Double(bitPattern: bits)
    }
}

extension Float: WireCodable {
    /// Four bytes, little-endian IEEE 754, with NaN canonicalized as for `Double`.
    @inlinable public func encode(to writer: inout WireWriter) {
        let bits = isNaN ? Float.nan.bitPattern : bitPattern
        writer.buffer.writeInteger(bits, endianness: .little)
    }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        guard let bits = reader.buffer.readInteger(endianness: .little, as: UInt32.self) else {
            throw .truncated("a Float")
        }
        self = Float(bitPattern: bits)
    }
}

// MARK: - Strings and bytes

extension String: WireCodable {
    /// A varint byte length, then the UTF-8 bytes. Decoding rejects invalid UTF-8 rather than repairing it.
    @inlinable public func encode(to writer: inout WireWriter) {
        var copy = self
        copy.withUTF8 { writer.writeLengthPrefixed($0) }
    }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        let length = try reader.readLength(of: "a String")
        let decoded: String? = reader.buffer.withUnsafeReadableBytes { raw in
            String(validating: UnsafeRawBufferPointer(rebasing: raw[..<length]), as: UTF8.self)
        }
        guard let string = decoded else {
            throw WireError(code: .invalidUTF8, message: "a String of \(length) bytes is not valid UTF-8")
        }
        reader.buffer.moveReaderIndex(forwardBy: length)
        self = string
    }
}

extension ByteBuffer: WireCodable {
    /// A byte string: a varint length, then the bytes. The same bytes as `[UInt8]`.
    /// Decoding returns a slice that shares storage with the input.
    @inlinable public func encode(to writer: inout WireWriter) { writer.writeLengthPrefixed(self) }
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        self = try reader.readLengthPrefixedSlice()
    }
}

// MARK: - Optional

extension Optional: WireEncodable where Wrapped: WireEncodable {
    /// A tag byte, 0 for `nil` and 1 followed by the value otherwise.
    @inlinable public func encode(to writer: inout WireWriter) {
        switch self {
        case .none: writer.writeByte(0)
        case .some(let value):
            writer.writeByte(1)
            value.encode(to: &writer)
        }
    }
}

extension Optional: WireDecodable where Wrapped: WireDecodable {
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        switch try reader.readByte() {
        case 0: self = .none
        case 1: self = .some(try reader.read(Wrapped.self))
        case let tag: throw WireError(code: .invalidValue, message: "Optional tag \(tag) is neither 0 nor 1")
        }
    }
}

// MARK: - Collections

extension Array: WireEncodable where Element: WireEncodable {
    /// A varint count, then each element. An array of `UInt8` is therefore a byte string.
    @inlinable public func encode(to writer: inout WireWriter) {
        writer.writeVarint(UInt64(count))
        if Element.self == UInt8.self {
            _ = self.withUnsafeBytes { writer.buffer.writeBytes($0) }
            return
        }
        for element in self { element.encode(to: &writer) }
    }
}

extension Array: WireDecodable where Element: WireDecodable {
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        if Element.self == UInt8.self {
            let bytes = try reader.readLengthPrefixedBytes()
            self = unsafeBitCast(bytes, to: [Element].self)
            return
        }
        let count = try reader.readCount(of: "an Array<\(Element.self)>")
        var elements: [Element] = []
        elements.reserveCapacity(Swift.min(count, reader.remaining))
        for _ in 0..<count { elements.append(try reader.read(Element.self)) }
        self = elements
    }
}

extension Dictionary: WireEncodable where Key: WireEncodable, Value: WireEncodable {
    /// A varint count, then each key and value, ordered by the encoded bytes of the keys. The order makes the
    /// encoding canonical: a dictionary built in any order writes the same bytes.
    @inlinable public func encode(to writer: inout WireWriter) {
        writer.writeVarint(UInt64(count))
        if count == 1, let (key, value) = first {
            key.encode(to: &writer)
            value.encode(to: &writer)
            return
        }
        var keys = WireWriter(capacity: count * 8)
        var entries: [(start: Int, end: Int, value: Value)] = []
        entries.reserveCapacity(count)
        for (key, value) in self {
            let start = keys.buffer.writerIndex
            key.encode(to: &keys)
            entries.append((start, keys.buffer.writerIndex, value))
        }
        let keyBytes = keys.buffer
        entries.sort { WireOrdering.bytes(keyBytes, $0.start, $0.end, precede: $1.start, $1.end) }
        for entry in entries {
            writer.buffer.writeImmutableBuffer(keyBytes.getSlice(at: entry.start, length: entry.end - entry.start)!)
            entry.value.encode(to: &writer)
        }
    }
}

extension Dictionary: WireDecodable where Key: WireDecodable, Value: WireDecodable {
    /// Decoding rejects keys that are duplicated or out of canonical order.
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        let count = try reader.readCount(of: "a Dictionary")
        var result: [Key: Value] = [:]
        result.reserveCapacity(Swift.min(count, reader.remaining))
        var previous: ByteBuffer?
        for _ in 0..<count {
            let (key, keyBytes) = try reader.capturingBytes { (r) throws(WireError) in try r.read(Key.self) }
            if let previous, !WireOrdering.precedes(previous, keyBytes) {
                throw WireError(code: .nonCanonical, message: "Dictionary keys are duplicated or out of order")
            }
            previous = keyBytes
            result[key] = try reader.read(Value.self)
        }
        self = result
    }
}

extension Set: WireEncodable where Element: WireEncodable {
    /// A varint count, then each element, ordered by their encoded bytes.
    @inlinable public func encode(to writer: inout WireWriter) {
        writer.writeVarint(UInt64(count))
        if count == 1, let element = first {
            element.encode(to: &writer)
            return
        }
        var scratch = WireWriter(capacity: count * 8)
        var ranges: [(start: Int, end: Int)] = []
        ranges.reserveCapacity(count)
        for element in self {
            let start = scratch.buffer.writerIndex
            element.encode(to: &scratch)
            ranges.append((start, scratch.buffer.writerIndex))
        }
        let bytes = scratch.buffer
        ranges.sort { WireOrdering.bytes(bytes, $0.start, $0.end, precede: $1.start, $1.end) }
        for range in ranges {
            writer.buffer.writeImmutableBuffer(bytes.getSlice(at: range.start, length: range.end - range.start)!)
        }
    }
}

extension Set: WireDecodable where Element: WireDecodable {
    /// Decoding rejects elements that are duplicated or out of canonical order.
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        let count = try reader.readCount(of: "a Set")
        var result = Set<Element>()
        result.reserveCapacity(Swift.min(count, reader.remaining))
        var previous: ByteBuffer?
        for _ in 0..<count {
            let (element, bytes) = try reader.capturingBytes { (r) throws(WireError) in try r.read(Element.self) }
            if let previous, !WireOrdering.precedes(previous, bytes) {
                throw WireError(code: .nonCanonical, message: "Set elements are duplicated or out of order")
            }
            previous = bytes
            result.insert(element)
        }
        self = result
    }
}

// MARK: - Enums with raw values

extension WireEncodable where Self: RawRepresentable, RawValue: WireEncodable {
    /// An enum with a raw value is written as its raw value.
    @inlinable public func encode(to writer: inout WireWriter) { rawValue.encode(to: &writer) }
}

extension WireDecodable where Self: RawRepresentable, RawValue: WireDecodable {
    /// Decoding an unknown raw value throws ``WireError/Code/invalidValue``.
    @inlinable public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.read(RawValue.self)
        guard let value = Self(rawValue: raw) else {
            throw WireError(code: .invalidValue, message: "\(raw) is not a raw value of \(Self.self)")
        }
        self = value
    }
}

// MARK: - Byte ordering

/// Lexicographic comparison of encoded bytes, the order that makes collections canonical.
public enum WireOrdering {
    /// Whether the bytes of `a` sort strictly before the bytes of `b` (unsigned, lexicographic, shorter first on
    /// a common prefix).
    @inlinable
    public static func precedes(_ a: ByteBuffer, _ b: ByteBuffer) -> Bool {
        a.withUnsafeReadableBytes { x in b.withUnsafeReadableBytes { y in compare(x, y) < 0 } }
    }

    @inlinable
    static func bytes(_ buffer: ByteBuffer, _ aStart: Int, _ aEnd: Int, precede bStart: Int, _ bEnd: Int) -> Bool {
        buffer.withVeryUnsafeBytes { all in
            compare(
                UnsafeRawBufferPointer(rebasing: all[aStart..<aEnd]),
                UnsafeRawBufferPointer(rebasing: all[bStart..<bEnd])
            ) < 0
        }
    }

    /// Compares two byte ranges: negative, zero or positive.
    @inlinable
    public static func compare(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Int {
        let n = Swift.min(x.count, y.count)
        var i = 0
        while i < n {
            let a = x[i]
            let b = y[i]
            if a != b { return a < b ? -1 : 1 }
            i += 1
        }
        return x.count - y.count
    }
}
