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
    /// Decodes the argument struct of `function`; failure is `badArgument`.
    public static func decodeArgument<Value: Decodable>(
        _ type: Value.Type, from argument: [UInt8], function: String
    ) throws(RaftStateMachineError) -> Value {
        do {
            return try WireDecoder(limits: limits(for: argument)).decode(type, fromBytes: argument)
        } catch {
            throw RaftStateMachineError(code: .badArgument, message: "\(function): undecodable argument: \(error)")
        }
    }

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

    /// Encodes a client's argument struct; failure is `invalidRequest`.
    public static func encodeArgument<Value: Encodable>(
        _ value: Value, function: String
    ) throws(RaftClientError) -> [UInt8] {
        do {
            return try WireEncoder().encodeToBytes(value)
        } catch {
            throw RaftClientError(code: .invalidRequest, message: "\(function): unencodable argument: \(error)")
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
        if let optional = value as? any OptionalValue, optional.isNone { return }
        if let codable = value as? any Encodable {
            try container.encode(codable, forKey: key)
        } else if let native = value as? any WireEncodable {
            try container.encode(Wire.encodeToBytes(native), forKey: key)
        } else {
            throw WireError(code: .invalidValue, message: "\(Value.self) is neither Codable nor WireCodable")
        }
    }

    /// Reads one argument field written by ``encodeField(_:into:forKey:)``.
    public static func decodeField<Value, Key: CodingKey>(
        _ type: Value.Type, from container: KeyedDecodingContainer<Key>, forKey key: Key
    ) throws -> Value {
        if !container.contains(key), let optional = type as? any ExpressibleByNilLiteral.Type,
            let none = optional.init(nilLiteral: ()) as? Value
        {
            return none
        }
        if let codable = type as? any Decodable.Type {
            func decode<D: Decodable>(_ type: D.Type) throws -> Value? {
                try container.decode(type, forKey: key) as? Value
            }
            if let value = try decode(codable) { return value }
        } else if let native = type as? any WireDecodable.Type {
            let bytes = try container.decode([UInt8].self, forKey: key)
            func decode<W: WireDecodable>(_ type: W.Type) throws -> Value? {
                try Wire.decode(type, fromBytes: bytes, limits: limits(for: bytes)) as? Value
            }
            if let value = try decode(native) { return value }
        }
        throw WireError(code: .invalidValue, message: "\(Value.self) is neither Codable nor WireCodable")
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
    private static func limits(for bytes: [UInt8]) -> WireLimits {
        let defaults = WireLimits()
        return WireLimits(
            maxBytesLength: max(defaults.maxBytesLength, bytes.count),
            maxCollectionCount: max(defaults.maxCollectionCount, bytes.count), maxDepth: defaults.maxDepth)
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
