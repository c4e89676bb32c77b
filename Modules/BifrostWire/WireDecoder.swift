import NIOCore

/// Decodes any `Decodable` value from Bifrost's binary wire format, as written by ``WireEncoder``.
///
/// Decoding is strict and safe on hostile input: truncated, random or oversized bytes throw a ``WireError``;
/// lengths and counts are checked against ``WireLimits`` and the bytes remaining before anything is allocated.
/// Fields unknown to the decoding type are skipped and missing optional fields decode as `nil`, which is what
/// lets a type grow by appending optional fields (see `docs/protocol.md`).
public struct WireDecoder: Sendable {
    /// The limits every length, count and nesting level is checked against.
    public var limits: WireLimits

    /// Creates a decoder with the given limits.
    public init(limits: WireLimits = .default) {
        self.limits = limits
    }

    /// Decodes one `Value` that must span every readable byte of `buffer`.
    public func decode<Value: Decodable>(_ type: Value.Type, from buffer: ByteBuffer) throws(WireError) -> Value {
        var reader = WireReader(buffer: buffer, limits: limits)
        let value = try decode(type, from: &reader)
        try reader.expectEnd(of: Value.self)
        return value
    }

    /// Decodes one `Value` that must span every byte of `bytes`.
    public func decode<Value: Decodable, Bytes: Sequence<UInt8>>(
        _ type: Value.Type,
        fromBytes bytes: Bytes
    ) throws(WireError) -> Value {
        try decode(type, from: ByteBuffer(bytes: bytes))
    }

    /// Decodes one `Value` from `reader`, advancing it past the value.
    public func decode<Value: Decodable>(_ type: Value.Type, from reader: inout WireReader) throws(WireError) -> Value {
        do {
            return try _WireDecoding.decodeValue(type, from: &reader, codingPath: [])
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(code: .invalidValue, message: "\(Value.self).init(from:) threw: \(error)")
        }
    }
}

// MARK: - Collections through Codable

/// Implemented by `Optional`, `Array`, `Dictionary` and `Set` so that the bridge reads their native layout.
protocol _WireBridgedDecodable {
    static func _wireDecode(from reader: inout WireReader, codingPath: [any CodingKey]) throws -> Self
}

extension Optional: _WireBridgedDecodable where Wrapped: Decodable {
    static func _wireDecode(from reader: inout WireReader, codingPath: [any CodingKey]) throws -> Self {
        switch try reader.readByte() {
        case 0: return .none
        case 1: return .some(try _WireDecoding.decodeValue(Wrapped.self, from: &reader, codingPath: codingPath))
        case let tag: throw WireError(code: .invalidValue, message: "Optional tag \(tag) is neither 0 nor 1")
        }
    }
}

extension Array: _WireBridgedDecodable where Element: Decodable {
    static func _wireDecode(from reader: inout WireReader, codingPath: [any CodingKey]) throws -> Self {
        let count = try reader.readCount(of: "an Array<\(Element.self)>")
        var elements: [Element] = []
        elements.reserveCapacity(Swift.min(count, reader.remaining))
        for _ in 0..<count {
            elements.append(try _WireDecoding.decodeValue(Element.self, from: &reader, codingPath: codingPath))
        }
        return elements
    }
}

extension Dictionary: _WireBridgedDecodable where Key: Decodable, Value: Decodable {
    static func _wireDecode(from reader: inout WireReader, codingPath: [any CodingKey]) throws -> Self {
        let count = try reader.readCount(of: "a Dictionary")
        var result: [Key: Value] = [:]
        result.reserveCapacity(Swift.min(count, reader.remaining))
        var previous: ByteBufferView?
        for _ in 0..<count {
            let before = reader.buffer
            let key = try _WireDecoding.decodeValue(Key.self, from: &reader, codingPath: codingPath)
            let keyBytes = before.readableBytesView.prefix(before.readableBytes - reader.buffer.readableBytes)
            if let previous, !previous.lexicographicallyPrecedes(keyBytes) {
                throw WireError(code: .nonCanonical, message: "Dictionary keys are duplicated or out of order")
            }
            previous = keyBytes
            result[key] = try _WireDecoding.decodeValue(Value.self, from: &reader, codingPath: codingPath)
        }
        return result
    }
}

extension Set: _WireBridgedDecodable where Element: Decodable {
    static func _wireDecode(from reader: inout WireReader, codingPath: [any CodingKey]) throws -> Self {
        let count = try reader.readCount(of: "a Set")
        var result = Set<Element>()
        result.reserveCapacity(Swift.min(count, reader.remaining))
        var previous: ByteBufferView?
        for _ in 0..<count {
            let before = reader.buffer
            let element = try _WireDecoding.decodeValue(Element.self, from: &reader, codingPath: codingPath)
            let bytes = before.readableBytesView.prefix(before.readableBytes - reader.buffer.readableBytes)
            if let previous, !previous.lexicographicallyPrecedes(bytes) {
                throw WireError(code: .nonCanonical, message: "Set elements are duplicated or out of order")
            }
            previous = bytes
            result.insert(element)
        }
        return result
    }
}

// MARK: - The Decoder

enum _WireDecoding {
    static func decodeValue<T: Decodable>(
        _ type: T.Type,
        from reader: inout WireReader,
        codingPath: @autoclosure () -> [any CodingKey]
    ) throws -> T {
        reader.depth += 1
        defer { reader.depth -= 1 }
        guard reader.depth <= reader.limits.maxDepth else {
            throw WireError(code: .depthExceeded, message: "nesting deeper than \(reader.limits.maxDepth) at \(T.self)")
        }
        if let native = T.self as? any WireDecodable.Type {
            return try cast(readNative(native, from: &reader), to: T.self)
        }
        if let bridged = T.self as? any _WireBridgedDecodable.Type {
            return try cast(bridged._wireDecode(from: &reader, codingPath: codingPath()), to: T.self)
        }
        let state = _DecodingState(reader: reader, codingPath: codingPath())
        let value = try T(from: _WireDecoderImpl(state: state))
        reader = state.reader
        return value
    }

    private static func readNative<W: WireDecodable>(_ type: W.Type, from reader: inout WireReader) throws -> W {
        try W(from: &reader)
    }

    private static func cast<T>(_ value: Any, to type: T.Type) throws -> T {
        guard let typed = value as? T else {
            throw WireError(code: .invalidValue, message: "internal: decoded \(Swift.type(of: value)) for \(T.self)")
        }
        return typed
    }
}

/// The read position shared by a decoder and the containers it hands out.
final class _DecodingState {
    var reader: WireReader
    let codingPath: [any CodingKey]
    var keyed: WireKeyedFrame?
    var unkeyed: _UnkeyedState?

    init(reader: WireReader, codingPath: [any CodingKey]) {
        self.reader = reader
        self.codingPath = codingPath
    }
}

/// A keyed container's frame (see `docs/protocol.md`), parsed once: each field's name and value bytes.
///
/// The `Codable` bridge decodes structs through it, and so does code that reads a keyed frame without a
/// `Decoder` (the argument structs `@StateMachine` generates), so both accept exactly the same input: fields in
/// any order, unknown fields skipped, a repeated field `nonCanonical`.
public struct WireKeyedFrame {
    /// The fields' names (UTF-8), in the order they were written.
    public private(set) var names: [ByteBuffer] = []
    /// The fields' value bytes, in the same order.
    public private(set) var values: [ByteBuffer] = []
    private var hint = 0

    /// Reads one frame from `reader`.
    public init(reader: inout WireReader) throws(WireError) {
        let length = try reader.readLength(of: "a keyed container")
        var frame = WireReader(buffer: try reader.readSlice(length: length), limits: reader.limits)
        while !frame.isAtEnd {
            let name = try frame.readLength(of: "a field name")
            let nameBytes = try frame.readSlice(length: name)
            let valueBytes = try frame.readLengthPrefixedSlice()
            if names.contains(nameBytes) {
                throw WireError(code: .nonCanonical, message: "a keyed container repeats a field")
            }
            names.append(nameBytes)
            values.append(valueBytes)
        }
    }

    /// The index of the field named `name`; fields are usually read in the order they were written.
    public mutating func index(of name: String) -> Int? {
        var name = name
        return name.withUTF8 { index(ofUTF8: UnsafeRawBufferPointer($0)) }
    }

    /// The value bytes of the field named `name`, if the frame has it.
    public mutating func value(named name: StaticString) -> ByteBuffer? {
        name.withUTF8Buffer { utf8 in index(ofUTF8: UnsafeRawBufferPointer(utf8)).map { values[$0] } }
    }

    private mutating func index(ofUTF8 raw: UnsafeRawBufferPointer) -> Int? {
        let n = names.count
        var probe = 0
        while probe < n {
            let i = (hint + probe) % n
            if names[i].withUnsafeReadableBytes({ WireOrdering.compare($0, raw) == 0 }) {
                hint = i + 1
                return i
            }
            probe += 1
        }
        return nil
    }
}

struct _UnkeyedState {
    var frame: WireReader
    var index = 0
}

struct _WireDecoderImpl: Decoder {
    let state: _DecodingState
    var codingPath: [any CodingKey] { state.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if state.keyed == nil { state.keyed = try WireKeyedFrame(reader: &state.reader) }
        return KeyedDecodingContainer(_KeyedDecoder<Key>(state: state))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        if state.unkeyed == nil {
            let length = try state.reader.readLength(of: "an unkeyed container")
            let slice = try state.reader.readSlice(length: length)
            var frame = WireReader(buffer: slice, limits: state.reader.limits)
            frame.depth = state.reader.depth
            state.unkeyed = _UnkeyedState(frame: frame)
        }
        return _UnkeyedDecoder(state: state)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        _SingleValueDecoder(state: state)
    }
}

struct _KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let state: _DecodingState
    var codingPath: [any CodingKey] { state.codingPath }

    var allKeys: [Key] {
        (state.keyed?.names ?? []).compactMap { name in
            Key(stringValue: String(decoding: name.readableBytesView, as: UTF8.self))
        }
    }

    func contains(_ key: Key) -> Bool { state.keyed?.index(of: key.stringValue) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { !contains(key) }

    private func valueReader(_ key: Key) throws -> WireReader {
        guard let index = state.keyed?.index(of: key.stringValue), let bytes = state.keyed?.values[index] else {
            throw WireError(code: .missingField, message: "no field '\(key.stringValue)' at \(pathString)")
        }
        var reader = WireReader(buffer: bytes, limits: state.reader.limits)
        reader.depth = state.reader.depth
        return reader
    }

    private var pathString: String {
        codingPath.isEmpty ? "the top level" : codingPath.map(\.stringValue).joined(separator: ".")
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        var reader = try valueReader(key)
        let value = try _WireDecoding.decodeValue(type, from: &reader, codingPath: codingPath + [key])
        try reader.expectEnd(of: T.self)
        return value
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        contains(key) ? try decode(type, forKey: key) : nil
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try nestedDecoder(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try nestedDecoder(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { try nestedDecoder(Key(stringValue: "super"), name: "super") }

    func superDecoder(forKey key: Key) throws -> any Decoder { try nestedDecoder(key) }

    private func nestedDecoder(_ key: Key?, name: String? = nil) throws -> _WireDecoderImpl {
        let field = name ?? key?.stringValue ?? "super"
        guard let index = state.keyed?.index(of: field), let bytes = state.keyed?.values[index] else {
            throw WireError(code: .missingField, message: "no field '\(field)' at \(pathString)")
        }
        var reader = WireReader(buffer: bytes, limits: state.reader.limits)
        reader.depth = state.reader.depth + 1
        guard reader.depth <= reader.limits.maxDepth else {
            throw WireError(code: .depthExceeded, message: "nesting deeper than \(reader.limits.maxDepth)")
        }
        let path = codingPath + [key.map { $0 as any CodingKey } ?? _WireCodingKey.super]
        return _WireDecoderImpl(state: _DecodingState(reader: reader, codingPath: path))
    }
}

struct _UnkeyedDecoder: UnkeyedDecodingContainer {
    let state: _DecodingState
    var codingPath: [any CodingKey] { state.codingPath }
    var count: Int? { nil }
    var isAtEnd: Bool { state.unkeyed?.frame.isAtEnd ?? true }
    var currentIndex: Int { state.unkeyed?.index ?? 0 }

    private func withFrame<R>(_ body: (inout WireReader) throws -> R) throws -> R {
        guard var unkeyed = state.unkeyed else {
            throw WireError(code: .invalidValue, message: "internal: no unkeyed container")
        }
        state.unkeyed = nil
        defer { state.unkeyed = unkeyed }
        return try body(&unkeyed.frame)
    }

    private func advance() { state.unkeyed?.index += 1 }

    mutating func decodeNil() throws -> Bool {
        let isNil = try withFrame { frame -> Bool in
            guard let tag = frame.buffer.getInteger(at: frame.buffer.readerIndex, as: UInt8.self) else {
                throw WireError.truncated("an unkeyed container")
            }
            if tag == 0 { frame.buffer.moveReaderIndex(forwardBy: 1) }
            return tag == 0
        }
        if isNil { advance() }
        return isNil
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let path = codingPath + [_WireCodingKey(index: currentIndex)]
        let value = try withFrame { frame -> T in
            let tag = try frame.readByte()
            guard tag == 1 else {
                let what = tag == 0 ? "nil" : "tag \(tag)"
                throw WireError(
                    code: .invalidValue, message: "expected a \(T.self) in an unkeyed container, got \(what)")
            }
            return try _WireDecoding.decodeValue(type, from: &frame, codingPath: path)
        }
        advance()
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try nested { try $0.container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try nested { try $0.unkeyedContainer() }
    }

    /// A super-decoder's element was written as a frame, so it gets a reader of its own over exactly that frame.
    mutating func superDecoder() throws -> any Decoder {
        try nested { decoder in
            let slice = try decoder.state.reader.readLengthPrefixedSlice()
            var reader = WireReader(buffer: slice, limits: decoder.state.reader.limits)
            reader.depth = decoder.state.reader.depth
            return _WireDecoderImpl(state: _DecodingState(reader: reader, codingPath: decoder.codingPath))
        }
    }

    /// Reads the next element's presence byte, then lets `open` take a container from a decoder positioned on the
    /// element. Containers parse their whole frame when they are created, so the frame moves past the element as
    /// soon as `open` returns.
    private mutating func nested<C>(_ open: (_WireDecoderImpl) throws -> C) throws -> C {
        let path = codingPath + [_WireCodingKey(index: currentIndex)]
        let container = try withFrame { frame -> C in
            let tag = try frame.readByte()
            guard tag == 1 else {
                throw WireError(code: .invalidValue, message: "expected a nested value, got tag \(tag)")
            }
            frame.depth += 1
            defer { frame.depth -= 1 }
            guard frame.depth <= frame.limits.maxDepth else {
                throw WireError(code: .depthExceeded, message: "nesting deeper than \(frame.limits.maxDepth)")
            }
            let nestedState = _DecodingState(reader: frame, codingPath: path)
            let container = try open(_WireDecoderImpl(state: nestedState))
            frame.buffer = nestedState.reader.buffer
            return container
        }
        advance()
        return container
    }
}

struct _SingleValueDecoder: SingleValueDecodingContainer {
    let state: _DecodingState
    var codingPath: [any CodingKey] { state.codingPath }

    func decodeNil() -> Bool {
        guard let byte = state.reader.buffer.getInteger(at: state.reader.buffer.readerIndex, as: UInt8.self),
            byte == 0
        else { return false }
        state.reader.buffer.moveReaderIndex(forwardBy: 1)
        return true
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try _WireDecoding.decodeValue(type, from: &state.reader, codingPath: codingPath)
    }
}
