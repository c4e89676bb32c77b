import NIOCore

/// Encodes any `Encodable` value in Bifrost's binary wire format.
///
/// The encoding is the same in debug and release builds and in every process, and it is canonical: equal values
/// give equal bytes (dictionaries and sets are sorted by their encoded keys). Values that are also
/// ``WireEncodable`` use their native encoding, so `[String: Int]` writes the same bytes through either path.
///
/// The layout of a `Codable` value (see `docs/protocol.md`):
/// - a keyed container (a struct, a class, an enum case) is a frame: a varint byte length, then for each field
///   the key's name as a string, a varint value length, and the value. A field that is `nil` is left out.
/// - an unkeyed container is a frame of elements, each preceded by a presence byte (0 for nil, 1 for a value).
/// - a single-value container is the value itself.
/// - `Optional`, `Array`, `Dictionary` and `Set` have the same layout as their native ``WireEncodable`` forms.
public struct WireEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Encodes `value` into a new buffer.
    public func encode<Value: Encodable>(_ value: Value) throws(WireError) -> ByteBuffer {
        var writer = WireWriter(capacity: 64)
        try encode(value, into: &writer)
        return writer.buffer
    }

    /// Encodes `value` into a new byte array.
    public func encodeToBytes<Value: Encodable>(_ value: Value) throws(WireError) -> [UInt8] {
        var buffer = try encode(value)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Appends `value` to `writer`.
    public func encode<Value: Encodable>(_ value: Value, into writer: inout WireWriter) throws(WireError) {
        do {
            try _WireEncoding.encodeValue(value, into: &writer, codingPath: [])
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(code: .encodingFailed, message: "\(Value.self).encode(to:) threw: \(error)")
        }
    }
}

// MARK: - Collections through Codable

/// Implemented by `Optional`, `Array`, `Dictionary` and `Set` so that the `Codable` bridge writes them in their
/// canonical native layout even when their elements are only `Codable`.
protocol _WireBridgedEncodable {
    func _wireEncode(into writer: inout WireWriter, codingPath: [any CodingKey]) throws
}

extension Optional: _WireBridgedEncodable where Wrapped: Encodable {
    func _wireEncode(into writer: inout WireWriter, codingPath: [any CodingKey]) throws {
        switch self {
        case .none: writer.writeByte(0)
        case .some(let value):
            writer.writeByte(1)
            try _WireEncoding.encodeValue(value, into: &writer, codingPath: codingPath)
        }
    }
}

extension Array: _WireBridgedEncodable where Element: Encodable {
    func _wireEncode(into writer: inout WireWriter, codingPath: [any CodingKey]) throws {
        writer.writeVarint(UInt64(count))
        for element in self { try _WireEncoding.encodeValue(element, into: &writer, codingPath: codingPath) }
    }
}

extension Dictionary: _WireBridgedEncodable where Key: Encodable, Value: Encodable {
    func _wireEncode(into writer: inout WireWriter, codingPath: [any CodingKey]) throws {
        var pairs: [(key: ByteBuffer, value: Value)] = []
        pairs.reserveCapacity(count)
        for (key, value) in self {
            var keyWriter = WireWriter(capacity: 16)
            try _WireEncoding.encodeValue(key, into: &keyWriter, codingPath: codingPath)
            pairs.append((keyWriter.buffer, value))
        }
        pairs.sort { WireOrdering.precedes($0.key, $1.key) }
        writer.writeVarint(UInt64(count))
        for pair in pairs {
            writer.buffer.writeImmutableBuffer(pair.key)
            try _WireEncoding.encodeValue(pair.value, into: &writer, codingPath: codingPath)
        }
    }
}

extension Set: _WireBridgedEncodable where Element: Encodable {
    func _wireEncode(into writer: inout WireWriter, codingPath: [any CodingKey]) throws {
        var encoded: [ByteBuffer] = []
        encoded.reserveCapacity(count)
        for element in self {
            var elementWriter = WireWriter(capacity: 16)
            try _WireEncoding.encodeValue(element, into: &elementWriter, codingPath: codingPath)
            encoded.append(elementWriter.buffer)
        }
        encoded.sort { WireOrdering.precedes($0, $1) }
        writer.writeVarint(UInt64(count))
        for element in encoded { writer.buffer.writeImmutableBuffer(element) }
    }
}

// MARK: - The Encoder

enum _WireEncoding {
    /// Writes one value: natively if it is ``WireEncodable``, in the bridged collection layout if it is a standard
    /// collection, and otherwise through its `encode(to:)`.
    static func encodeValue<T: Encodable>(
        _ value: T,
        into writer: inout WireWriter,
        codingPath: @autoclosure () -> [any CodingKey]
    ) throws {
        if let native = value as? any WireEncodable {
            native.encode(to: &writer)
        } else if let bridged = value as? any _WireBridgedEncodable {
            try bridged._wireEncode(into: &writer, codingPath: codingPath())
        } else {
            let node = _EncodingNode(codingPath: codingPath())
            try value.encode(to: _WireEncoderImpl(node: node))
            try node.finish(into: &writer)
        }
    }
}

/// What one `encode(to:)` call produced: nothing, a single value, or a keyed or unkeyed container.
final class _EncodingNode {
    enum Content {
        case empty
        case single(WireWriter)
        case keyed(WireWriter, deferred: [(key: String, node: _EncodingNode)])
        case unkeyed(WireWriter, deferred: [(position: Int, node: _EncodingNode, framed: Bool)])
    }

    let codingPath: [any CodingKey]
    var content: Content = .empty

    init(codingPath: [any CodingKey]) {
        self.codingPath = codingPath
    }

    func finish(into writer: inout WireWriter) throws {
        switch content {
        case .empty:
            break
        case .single(let single):
            writer.buffer.writeImmutableBuffer(single.buffer)
        case .keyed(let entries, let deferred):
            try writer.writeFramed { frame throws in
                frame.buffer.writeImmutableBuffer(entries.buffer)
                for (key, node) in deferred {
                    key.encode(to: &frame)
                    try frame.writeFramed { try node.finish(into: &$0) }
                }
            }
        case .unkeyed(let elements, let deferred):
            try writer.writeFramed { frame throws in
                var position = elements.buffer.readerIndex
                for (at, node, framed) in deferred {
                    frame.buffer.writeImmutableBuffer(elements.buffer.getSlice(at: position, length: at - position)!)
                    position = at
                    frame.writeByte(1)
                    if framed {
                        try frame.writeFramed { try node.finish(into: &$0) }
                    } else {
                        try node.finish(into: &frame)
                    }
                }
                let tail = elements.buffer.writerIndex - position
                frame.buffer.writeImmutableBuffer(elements.buffer.getSlice(at: position, length: tail)!)
            }
        }
    }
}

struct _WireEncoderImpl: Encoder {
    let node: _EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        switch node.content {
        case .keyed: break
        case .empty, .single, .unkeyed: node.content = .keyed(WireWriter(capacity: 32), deferred: [])
        }
        return KeyedEncodingContainer(_KeyedEncoder<Key>(node: node))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        switch node.content {
        case .unkeyed: break
        case .empty, .single, .keyed: node.content = .unkeyed(WireWriter(capacity: 32), deferred: [])
        }
        return _UnkeyedEncoder(node: node)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        switch node.content {
        case .single: break
        case .empty, .keyed, .unkeyed: node.content = .single(WireWriter(capacity: 16))
        }
        return _SingleValueEncoder(node: node)
    }
}

extension _EncodingNode {
    /// Runs `body` on the container's writer in place (no copy-on-write).
    func withWriter<R>(_ body: (inout WireWriter) throws -> R) rethrows -> R {
        switch content {
        case .single(var writer):
            content = .empty
            defer { content = .single(writer) }
            return try body(&writer)
        case .keyed(var writer, let deferred):
            content = .empty
            defer { content = .keyed(writer, deferred: deferred) }
            return try body(&writer)
        case .unkeyed(var writer, let deferred):
            content = .empty
            defer { content = .unkeyed(writer, deferred: deferred) }
            return try body(&writer)
        case .empty:
            var writer = WireWriter(capacity: 16)
            defer { content = .single(writer) }
            return try body(&writer)
        }
    }

    func deferKeyed(_ key: String, _ child: _EncodingNode) {
        if case .keyed(let writer, var deferred) = content {
            content = .empty
            deferred.append((key, child))
            content = .keyed(writer, deferred: deferred)
        }
    }

    /// Registers a container or encoder handed out by an unkeyed container. Containers frame themselves; a
    /// super-encoder's output is framed here (`framed`), so that its decoder knows where it ends.
    func deferUnkeyed(_ child: _EncodingNode, framed: Bool = false) {
        if case .unkeyed(let writer, var deferred) = content {
            content = .empty
            deferred.append((writer.buffer.writerIndex, child, framed))
            content = .unkeyed(writer, deferred: deferred)
        }
    }
}

struct _KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: _EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }

    private func entry(_ key: Key, _ body: (inout WireWriter) throws -> Void) rethrows {
        try node.withWriter { writer in
            key.stringValue.encode(to: &writer)
            try writer.writeFramed(body)
        }
    }

    mutating func encodeNil(forKey key: Key) throws {
        // A nil field is left out: absent and nil are the same on the wire.
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try entry(key) { try _WireEncoding.encodeValue(value, into: &$0, codingPath: codingPath + [key]) }
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: String, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: Double, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { entry(key) { value.encode(to: &$0) } }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = _EncodingNode(codingPath: codingPath + [key])
        node.deferKeyed(key.stringValue, child)
        return _WireEncoderImpl(node: child).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = _EncodingNode(codingPath: codingPath + [key])
        node.deferKeyed(key.stringValue, child)
        return _WireEncoderImpl(node: child).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = _EncodingNode(codingPath: codingPath + [_WireCodingKey.super])
        node.deferKeyed(_WireCodingKey.super.stringValue, child)
        return _WireEncoderImpl(node: child)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = _EncodingNode(codingPath: codingPath + [key])
        node.deferKeyed(key.stringValue, child)
        return _WireEncoderImpl(node: child)
    }
}

struct _UnkeyedEncoder: UnkeyedEncodingContainer {
    let node: _EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }
    private(set) var count: Int = 0

    init(node: _EncodingNode) {
        self.node = node
    }

    mutating func encodeNil() throws {
        node.withWriter { $0.writeByte(0) }
        count += 1
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [_WireCodingKey(index: count)]
        try node.withWriter { writer in
            writer.writeByte(1)
            try _WireEncoding.encodeValue(value, into: &writer, codingPath: path)
        }
        count += 1
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    )
        -> KeyedEncodingContainer<NestedKey>
    {
        let child = _EncodingNode(codingPath: codingPath + [_WireCodingKey(index: count)])
        node.deferUnkeyed(child)
        count += 1
        return _WireEncoderImpl(node: child).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = _EncodingNode(codingPath: codingPath + [_WireCodingKey(index: count)])
        node.deferUnkeyed(child)
        count += 1
        return _WireEncoderImpl(node: child).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = _EncodingNode(codingPath: codingPath + [_WireCodingKey(index: count)])
        node.deferUnkeyed(child, framed: true)
        count += 1
        return _WireEncoderImpl(node: child)
    }
}

struct _SingleValueEncoder: SingleValueEncodingContainer {
    let node: _EncodingNode
    var codingPath: [any CodingKey] { node.codingPath }

    mutating func encodeNil() throws { node.withWriter { $0.writeByte(0) } }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try node.withWriter { try _WireEncoding.encodeValue(value, into: &$0, codingPath: codingPath) }
    }
}

/// Coding keys the bridge makes up: array positions and the `super` key.
struct _WireCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }

    init(index: Int) { self.init(intValue: index) }

    static let `super` = _WireCodingKey(stringValue: "super")
}
