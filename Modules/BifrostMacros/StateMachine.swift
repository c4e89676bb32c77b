@_exported import BifrostRaft

/// Declares a replicated state machine from a struct: its `@Command` and `@Query` methods become the state
/// machine's functions, with stable ids, the server-side dispatch, and a typed client. No ids to pick by hand.
///
/// ```swift
/// @StateMachine
/// struct Register: Codable {
///     var value = ""
///     static let onChanged = Subscription<NoPattern, String>("onChanged")
///
///     @Command mutating func set(_ new: String, context: RaftApplyContext) -> String {
///         defer { value = new }
///         context.notify(Self.onChanged, payload: new)
///         return value
///     }
///     @Query func get() -> String { value }
/// }
///
/// let register = Register.Client(raft: client, stateMachine: 1)   // or RegisterClient(...)
/// let old = try await register.set("x")
/// ```
///
/// The macro generates:
/// - `extension Register: RaftStateMachine`: `apply(function:argument:context:)` runs the `@Command` methods,
///   `query(function:argument:)` the `@Query` ones; an unknown id throws `functionNotFound`, an argument that does
///   not decode `badArgument`. `snapshot()` and `restore(from:)` encode and decode the whole struct with
///   ``WireEncoder`` unless the struct implements both itself.
/// - `Register.functionIDs` (full method name to id) and `Register.subscriptionKinds` (subscription name to kind).
/// - `Register.Client` (also named `RegisterClient`): one `async throws(RaftClientError)` method per command, per
///   query (with a `consistency:` parameter) and per `Subscription` (with an optional pattern).
///
/// A function's id is `RPCFunctionID.of("Register.set(_:context:)")`, computed at compile time, as for
/// `@Service`. Its argument is a struct with one field per parameter (named as the parameter), encoded with
/// ``WireEncoder``; a function without parameters takes an empty argument. A result is encoded with ``WireEncoder``,
/// and `Void` as no bytes.
///
/// Rules (each a compile-time error): the type is a non-generic struct; queries are not `mutating` (so a query
/// cannot change the state); methods are not `static`, `async` or generic, and take no `inout` or variadic
/// parameters; a command may end with a `RaftApplyContext` parameter, which the client does not send; no two
/// functions have the same id; a `Subscription`'s name is its property's name. Methods may throw: a
/// ``RaftStateMachineError`` is the function's result, any other error becomes `rejected` with its description.
@attached(
    extension, conformances: RaftStateMachine, names: named(apply), named(query), named(snapshot),
    named(restore), named(functionIDs), named(subscriptionKinds))
@attached(member, names: named(Client))
@attached(peer, names: suffixed(Client))
public macro StateMachine() = #externalMacro(module: "BifrostMacrosPlugin", type: "StateMachineMacro")

/// Marks a method of a `@StateMachine` struct as a command: replicated through the log and applied on every node.
/// It may be `mutating` and may take a trailing `RaftApplyContext` parameter (to raise events or read the cluster
/// time).
@attached(peer)
public macro Command() = #externalMacro(module: "BifrostMacrosPlugin", type: "CommandMacro")

/// Marks a method of a `@StateMachine` struct as a query: read-only, run on one node at the requested
/// ``ReadConsistency``. It must not be `mutating`.
@attached(peer)
public macro Query() = #externalMacro(module: "BifrostMacrosPlugin", type: "QueryMacro")

/// The runtime helpers of the code `@StateMachine` generates. Not meant to be called directly.
public enum StateMachineSupport {
    /// Checks that the argument of a function without parameters is empty; otherwise `badArgument`.
    public static func expectNoArgument(_ argument: [UInt8], function: String) throws(RaftStateMachineError) {
        guard argument.isEmpty else {
            throw RaftStateMachineError(
                code: .badArgument, message: "\(function) takes no argument, got \(argument.count) bytes")
        }
    }

    /// Encodes the result of `function` (a `Codable` type through ``WireEncoder``, else a ``WireEncodable`` type
    /// natively; the two give the same bytes for a type that is both); a result that cannot be encoded is
    /// `rejected`.
    public static func encodeResult<Value>(
        _ value: Value, function: String
    ) throws(RaftStateMachineError) -> [UInt8] {
        do {
            return try encodeValue(value)
        } catch {
            throw RaftStateMachineError(code: .rejected, message: "\(function): unencodable result: \(error)")
        }
    }

    /// The ``RaftStateMachineError`` a method's error stands for: itself, or `rejected` with its description.
    public static func stateMachineError(_ error: any Error) -> RaftStateMachineError {
        if let error = error as? RaftStateMachineError { return error }
        return RaftStateMachineError(code: .rejected, message: "\(error)")
    }

    /// The error of an unknown function id.
    public static func functionNotFound(
        _ function: UInt64, in stateMachine: String, kind: String
    )
        -> RaftStateMachineError
    {
        RaftStateMachineError(
            code: .functionNotFound,
            message: "\(stateMachine) has no \(kind) with id 0x\(String(function, radix: 16, uppercase: true))")
    }

    /// The snapshot image of a `Codable` state machine: `state` encoded with ``WireEncoder`` (canonical: equal
    /// states give equal bytes).
    public static func snapshot<State: Encodable>(of state: State) throws(RaftStateMachineError) -> [UInt8] {
        do {
            return try WireEncoder().encodeToBytes(state)
        } catch {
            throw RaftStateMachineError(code: .rejected, message: "\(State.self) cannot be encoded: \(error)")
        }
    }

    /// Decodes a snapshot image made by ``snapshot(of:)``; failure is `corruptSnapshot`.
    public static func restore<State: Decodable>(
        _ type: State.Type, from image: [UInt8]
    ) throws(RaftStateMachineError) -> State {
        do {
            return try WireDecoder(limits: limits(for: image)).decode(type, fromBytes: image)
        } catch {
            throw RaftStateMachineError(code: .corruptSnapshot, message: "\(State.self) snapshot: \(error)")
        }
    }

    /// Decodes a result the cluster returned (see ``encodeResult(_:function:)``); failure is `invalidRequest`.
    public static func decodeResult<Value>(
        _ type: Value.Type, from bytes: [UInt8], function: String
    ) throws(RaftClientError) -> Value {
        do {
            return try decodeValue(type, from: bytes)
        } catch {
            throw RaftClientError(code: .invalidRequest, message: "\(function): undecodable result: \(error)")
        }
    }

    /// Writes one argument field: a `Codable` value as itself (a `nil` optional is left out; a present one keeps
    /// the native `Optional` layout), a ``WireEncodable``-only value as its native encoding in a byte string.
    public static func encodeField<Value, Key: CodingKey>(
        _ value: Value, into container: inout KeyedEncodingContainer<Key>, forKey key: Key
    ) throws {
        if let field = try fieldValue(value) { try container.encode(field, forKey: key) }
    }

    /// What an argument field holds on the wire: nothing for `nil`, a `Codable` value as itself, a
    /// ``WireEncodable``-only value as its native encoding in a byte string.
    static func fieldValue<Value>(_ value: Value) throws -> (any Encodable)? {
        if let optional = value as? any OptionalValue, optional.isNone { return nil }
        if let codable = value as? any Encodable { return codable }
        if let native = value as? any WireEncodable { return Wire.encodeToBytes(native) }
        throw WireError(code: .invalidValue, message: "\(Value.self) is neither Codable nor WireCodable")
    }

    /// The `nil` of `type`, if it is an optional (a field left out decodes as it).
    static func none<Value>(_ type: Value.Type) -> Value? {
        (type as? any ExpressibleByNilLiteral.Type)?.init(nilLiteral: ()) as? Value
    }

    /// Reads a field held as ``fieldValue(_:)`` says: `codable` decodes a `Codable` type, `byteString` reads
    /// the byte string of a ``WireDecodable``-only type.
    static func fieldValue<Value>(
        _ type: Value.Type, codable: (any Decodable.Type) throws -> Any, byteString: () throws -> [UInt8]
    ) throws -> Value {
        if let decodable = type as? any Decodable.Type {
            if let value = try codable(decodable) as? Value { return value }
        } else if let native = type as? any WireDecodable.Type {
            let bytes = try byteString()
            func decode<W: WireDecodable>(_ type: W.Type) throws -> Value? {
                try Wire.decode(type, fromBytes: bytes, limits: limits(for: bytes)) as? Value
            }
            if let value = try decode(native) { return value }
        }
        throw WireError(code: .invalidValue, message: "\(Value.self) is neither Codable nor WireCodable")
    }

    /// Reads one argument field written by ``encodeField(_:into:forKey:)``.
    public static func decodeField<Value, Key: CodingKey>(
        _ type: Value.Type, from container: KeyedDecodingContainer<Key>, forKey key: Key
    ) throws -> Value {
        if !container.contains(key), let none = none(type) { return none }
        return try fieldValue(
            type, codable: { try container.decode($0, forKey: key) },
            byteString: { try container.decode([UInt8].self, forKey: key) })
    }

    static func encodeValue<Value>(_ value: Value) throws -> [UInt8] {
        if let codable = value as? any Encodable { return try WireEncoder().encodeToBytes(codable) }
        if let native = value as? any WireEncodable { return Wire.encodeToBytes(native) }
        throw WireError(code: .invalidValue, message: "\(Value.self) is neither Codable nor WireCodable")
    }

    static func decodeValue<Value>(_ type: Value.Type, from bytes: [UInt8]) throws -> Value {
        if let codable = type as? any Decodable.Type {
            func decode<D: Decodable>(_ type: D.Type) throws -> Value? {
                try WireDecoder(limits: limits(for: bytes)).decode(type, fromBytes: bytes) as? Value
            }
            if let value = try decode(codable) { return value }
        } else if let native = type as? any WireDecodable.Type {
            func decode<W: WireDecodable>(_ type: W.Type) throws -> Value? {
                try Wire.decode(type, fromBytes: bytes, limits: limits(for: bytes)) as? Value
            }
            if let value = try decode(native) { return value }
        }
        throw WireError(code: .invalidValue, message: "\(Value.self) is neither Codable nor WireCodable")
    }

    /// Limits for `bytes`: the defaults, raised so that a large snapshot or result still decodes (nothing can
    /// claim more elements or bytes than there are).
    static func limits(for bytes: [UInt8]) -> WireLimits {
        let defaults = WireLimits()
        return WireLimits(
            maxBytesLength: max(defaults.maxBytesLength, bytes.count),
            maxCollectionCount: max(defaults.maxCollectionCount, bytes.count), maxDepth: defaults.maxDepth)
    }
}

// MARK: - Native argument and result encoding

/// The argument structs `@StateMachine` generates encode and decode themselves field by field through these
/// helpers, with no `Encoder`/`Decoder` in between, and write exactly the bytes `WireEncoder` writes for the same
/// struct (a keyed frame: per field its name, its value's length and its value; `nil` fields left out). So logs
/// written by either path read back through the other. A field whose type is both ``WireCodable`` and `Codable`
/// (every standard type, and optionals of them) takes the native path; any other type goes through the `Codable`
/// bridge as before.
extension StateMachineSupport {
    /// Writes one argument field of a type that is both native and `Codable` (the bridge writes such values
    /// natively, so the bytes are the same).
    public static func writeField<Value: WireEncodable & Encodable>(
        _ value: Value, named name: StaticString, into writer: inout WireWriter
    ) throws {
        writeName(name, into: &writer)
        writer.writeFramed { (writer: inout WireWriter) in value.encode(to: &writer) }
    }

    /// Writes one optional argument field: nothing for `nil`, as the bridge does.
    public static func writeField<Value: WireEncodable & Encodable>(
        _ value: Value?, named name: StaticString, into writer: inout WireWriter
    ) throws {
        guard let value else { return }
        writeName(name, into: &writer)
        writer.writeFramed { (writer: inout WireWriter) in Optional(value).encode(to: &writer) }
    }

    /// Writes one argument field of any other type, through ``encodeField(_:into:forKey:)``'s rules.
    public static func writeField<Value>(
        _ value: Value, named name: StaticString, into writer: inout WireWriter
    ) throws {
        guard let field = try fieldValue(value) else { return }
        writeName(name, into: &writer)
        writer.writeLengthPrefixed(try WireEncoder().encodeToBytes(field))
    }

    private static func writeName(_ name: StaticString, into writer: inout WireWriter) {
        name.withUTF8Buffer { writer.writeLengthPrefixed($0) }
    }

    /// Encodes an argument struct whose `write` writes its fields with ``writeField(_:named:into:)``; failure is
    /// `invalidRequest`.
    public static func encodeArgument(
        function: String, _ write: (inout WireWriter) throws -> Void
    ) throws(RaftClientError) -> [UInt8] {
        var writer = WireWriter(capacity: 128)
        do {
            try writer.writeFramed { (writer: inout WireWriter) throws in try write(&writer) }
        } catch {
            throw RaftClientError(code: .invalidRequest, message: "\(function): unencodable argument: \(error)")
        }
        return writer.buffer.readBytes(length: writer.buffer.readableBytes) ?? []
    }

    /// The fields of an encoded argument struct, parsed once, as the `Codable` bridge parses a keyed frame: unknown
    /// fields are skipped, a repeated field is `nonCanonical`, and fields may come in any order.
    public struct ArgumentFields {
        /// The encoded argument: one keyed frame (a varint length, then `name, value` byte-string pairs).
        @usableFromInline let argument: [UInt8]
        @usableFromInline let limits: WireLimits
        /// Each field's name and value, as byte ranges of `argument`, in the order they were written.
        @usableFromInline var fields: [(name: Range<Int>, value: Range<Int>)] = []
        /// Where the next lookup starts: fields are usually read in the order they were written.
        @usableFromInline var hint = 0

        /// Parses the frame that is the whole of `argument`. It is parsed in place: the fields are ranges of
        /// `argument`, and the values of byte-string and `String` fields are copied once, straight out of it.
        public init(_ argument: [UInt8]) throws(WireError) {
            self.argument = argument
            limits = StateMachineSupport.limits(for: argument)
            let parsed: Result<[(name: Range<Int>, value: Range<Int>)], WireError> = argument.withUnsafeBytes { raw in
                Result { () throws(WireError) in try Self.parse(raw, limits: limits) }
            }
            fields = try parsed.get()
        }

        private static func parse(
            _ raw: UnsafeRawBufferPointer, limits: WireLimits
        ) throws(WireError) -> [(name: Range<Int>, value: Range<Int>)] {
            var offset = 0
            func span(_ what: String) throws(WireError) -> Range<Int> {
                let range = try byteString(in: raw, at: offset, what, limits: limits)
                offset = range.upperBound
                return range
            }
            let frame = try byteString(in: raw, at: 0, "a keyed container", limits: limits)
            offset = frame.lowerBound
            guard frame.upperBound == raw.count else {
                throw WireError(
                    code: .trailingBytes,
                    message: "\(raw.count - frame.upperBound) bytes remain after a complete \(ArgumentFields.self)")
            }
            var fields: [(name: Range<Int>, value: Range<Int>)] = []
            // Room for a few fields in the first allocation (growing from empty reallocates at the second one).
            fields.reserveCapacity(4)
            while offset < frame.upperBound {
                let name = try span("a field name")
                let value = try span("a byte string")
                let nameBytes = UnsafeRawBufferPointer(rebasing: raw[name])
                let repeated = fields.contains {
                    WireOrdering.compare(UnsafeRawBufferPointer(rebasing: raw[$0.name]), nameBytes) == 0
                }
                if repeated { throw WireError(code: .nonCanonical, message: "a keyed container repeats a field") }
                fields.append((name, value))
            }
            return fields
        }

        /// The byte string (a varint length, then the bytes) at `start` of `raw`: the range of its bytes, checked
        /// against the limits and the bytes there are.
        @usableFromInline
        static func byteString(
            in raw: UnsafeRawBufferPointer, at start: Int, _ what: String, limits: WireLimits
        ) throws(WireError) -> Range<Int> {
            var offset = start
            let length = try WireReader.readVarint(from: raw, at: &offset)
            guard length <= UInt64(limits.maxBytesLength) else {
                throw WireError(
                    code: .limitExceeded,
                    message: "\(what) of \(length) bytes exceeds the limit of \(limits.maxBytesLength)")
            }
            guard Int(length) <= raw.count - offset else {
                throw WireError(code: .truncated, message: "input ended inside \(what) of \(length) bytes")
            }
            return offset..<(offset + Int(length))
        }

        /// The value bytes of the field named `name`, as a range of ``argument``.
        @usableFromInline
        mutating func value(named name: StaticString) -> Range<Int>? {
            let count = fields.count
            var probe = 0
            while probe < count {
                let i = (hint + probe) % count
                let matches = argument.withUnsafeBytes { raw in
                    name.withUTF8Buffer { utf8 in
                        WireOrdering.compare(
                            UnsafeRawBufferPointer(rebasing: raw[fields[i].name]), UnsafeRawBufferPointer(utf8)) == 0
                    }
                }
                if matches {
                    hint = i + 1
                    return fields[i].value
                }
                probe += 1
            }
            return nil
        }

        @usableFromInline
        static func missing(_ name: StaticString) -> WireError {
            WireError(code: .missingField, message: "no field '\(name)' at the top level")
        }

        /// The byte string that is the whole of the field `value` (a varint length, then the bytes): its range.
        @usableFromInline
        func byteString(in value: Range<Int>, of type: Any.Type) throws(WireError) -> Range<Int> {
            let parsed: Result<Range<Int>, WireError> = argument.withUnsafeBytes { raw in
                Result { () throws(WireError) in
                    let field = UnsafeRawBufferPointer(rebasing: raw[value])
                    let string = try Self.byteString(in: field, at: 0, "a byte string", limits: limits)
                    guard string.upperBound == field.count else {
                        throw WireError(
                            code: .trailingBytes,
                            message: "\(field.count - string.upperBound) bytes remain after a complete \(type)")
                    }
                    return (value.lowerBound + string.lowerBound)..<value.upperBound
                }
            }
            return try parsed.get()
        }

        /// Reads a field of a type that is both native and `Codable`. Byte strings and `String`s are read
        /// straight out of the argument; other types through a ``WireReader`` over a copy of the field.
        @inlinable
        public mutating func read<Value: WireDecodable & Decodable>(
            _ type: Value.Type, named name: StaticString
        ) throws(WireError) -> Value {
            guard let value = self.value(named: name) else { throw Self.missing(name) }
            if Value.self == [UInt8].self {
                let range = try byteString(in: value, of: Value.self)
                return unsafeBitCast(Array(argument[range]), to: Value.self)
            }
            if Value.self == String.self {
                let range = try byteString(in: value, of: Value.self)
                let string = argument.withUnsafeBytes { raw -> String? in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[range])
                    // ASCII is valid UTF-8: decoded without the generic validation (and its metadata lookups).
                    if Wire.isASCII(bytes) { return String(decoding: bytes, as: UTF8.self) }
                    return String(validating: bytes, as: UTF8.self)
                }
                guard let string else {
                    throw WireError(code: .invalidUTF8, message: "a String of \(range.count) bytes is not valid UTF-8")
                }
                return unsafeBitCast(string, to: Value.self)
            }
            var reader = WireReader(bytes: argument[value], limits: limits)
            let decoded = try Value(from: &reader)
            try reader.expectEnd(of: Value.self)
            return decoded
        }

        /// Reads an optional field: `nil` when it is absent.
        public mutating func read<Value: WireDecodable & Decodable>(
            _ type: Value?.Type, named name: StaticString
        ) throws(WireError) -> Value? {
            guard let value = self.value(named: name) else { return nil }
            var reader = WireReader(bytes: argument[value], limits: limits)
            let decoded = try Value?(from: &reader)
            try reader.expectEnd(of: Value?.self)
            return decoded
        }

        /// Reads a field of any other type, through ``decodeField(_:from:forKey:)``'s rules.
        public mutating func read<Value>(_ type: Value.Type, named name: StaticString) throws -> Value {
            guard let value = self.value(named: name) else {
                if let none = StateMachineSupport.none(type) { return none }
                throw Self.missing(name)
            }
            let limits = self.limits
            let bytes = ByteBuffer(bytes: argument[value])
            return try StateMachineSupport.fieldValue(
                type, codable: { try WireDecoder(limits: limits).decode($0, from: bytes) },
                byteString: { try WireDecoder(limits: limits).decode([UInt8].self, from: bytes) })
        }
    }

    /// Decodes an argument struct with `read`, which reads its fields from ``ArgumentFields``; failure is
    /// `badArgument`.
    public static func decodeArgument<Value>(
        from argument: [UInt8], function: String, _ read: (inout ArgumentFields) throws -> Value
    ) throws(RaftStateMachineError) -> Value {
        do {
            var fields = try ArgumentFields(argument)
            return try read(&fields)
        } catch {
            throw RaftStateMachineError(code: .badArgument, message: "\(function): undecodable argument: \(error)")
        }
    }

    /// Encodes a result of a type that is both native and `Codable` (the same bytes as the bridge).
    public static func encodeResult<Value: WireEncodable & Encodable>(
        _ value: Value, function: String
    ) throws(RaftStateMachineError) -> [UInt8] {
        // Byte strings, the map's results, are written straight into the array (no buffer, no second copy).
        if Value.self == [UInt8]?.self {
            guard let bytes = unsafeBitCast(value, to: [UInt8]?.self) else { return [0] }
            return byteString(bytes, tag: 1)
        }
        if Value.self == [UInt8].self { return byteString(unsafeBitCast(value, to: [UInt8].self), tag: nil) }
        return Wire.encodeToBytes(value)
    }

    /// `bytes` as a byte string (a varint length, then the bytes), after an optional's `tag`.
    private static func byteString(_ bytes: [UInt8], tag: UInt8?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 11)
        if let tag { out.append(tag) }
        Wire.appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
        return out
    }

    /// Decodes a result of a type that is both native and `Codable`; failure is `invalidRequest`.
    public static func decodeResult<Value: WireDecodable & Decodable>(
        _ type: Value.Type, from bytes: [UInt8], function: String
    ) throws(RaftClientError) -> Value {
        do {
            return try Wire.decode(type, fromBytes: bytes, limits: limits(for: bytes))
        } catch {
            throw RaftClientError(code: .invalidRequest, message: "\(function): undecodable result: \(error)")
        }
    }
}

/// An optional, seen through a type-erased value (used to leave `nil` argument fields out).
public protocol OptionalValue {
    /// Whether the value is `nil`.
    var isNone: Bool { get }
}

extension Optional: OptionalValue {
    /// Whether the value is `nil`.
    public var isNone: Bool { self == nil }
}
