import BifrostWire
import NIOCore
import Synchronization

/// Stable identifiers of RPC functions: the 64-bit FNV-1a hash of `"Service.method"`.
///
/// The hash depends only on the name, so ids are the same in every build and process; the `@Service` macro
/// computes the same value at compile time. Two names that collide are caught when a service registers.
public enum RPCFunctionID {
    /// The id of `name` (for example `"Echo.say"`).
    public static func of(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0100_0000_01B3
        }
        return hash
    }
}

/// What a handler knows about the call it serves.
public struct RPCCallContext: Sendable {
    /// The service id the call was addressed to.
    public var service: UInt64
    /// The function id the call was addressed to.
    public var function: UInt64
    /// How long the caller is prepared to wait, if it said so.
    public var timeout: Duration?

    /// Creates a context.
    public init(service: UInt64, function: UInt64, timeout: Duration?) {
        self.service = service
        self.function = function
        self.timeout = timeout
    }
}

/// A service: a table of functions, each taking and returning encoded bytes.
///
/// Hand-written services build their table with ``RPCFunctionTable``; the `@Service` macro generates it.
public protocol RPCService: Sendable {
    /// The functions of the service by id.
    var functions: RPCFunctionTable { get }
}

/// Sends server-push messages on the stream of one call. Pushes travel over the caller's own connection, so
/// a client needs no listening port.
public struct RPCPushWriter: Sendable {
    private enum Sink: Sendable {
        case closure(@Sendable (ByteBuffer) -> Void)
        /// A server connection's pushes for call `id`: no allocation per call.
        case connection(any RPCPushTarget, id: UInt64)
    }

    private let sink: Sink

    /// Creates a writer that hands each payload to `sink`.
    public init(_ sink: @escaping @Sendable (ByteBuffer) -> Void) {
        self.sink = .closure(sink)
    }

    init(target: any RPCPushTarget, id: UInt64) {
        self.sink = .connection(target, id: id)
    }

    /// Sends one message.
    public func send(_ payload: ByteBuffer) {
        switch sink {
        case .closure(let send): send(payload)
        case .connection(let target, let id): target.push(payload, toCall: id)
        }
    }

    /// Encodes and sends one message.
    public func send<Value: WireEncodable>(_ value: Value) { send(Wire.encode(value)) }

    /// A writer that drops everything (for a stream function called as a unary one).
    public static let discarding = RPCPushWriter { _ in }
}

/// Where a server connection's pushes and callback responses go (one object per connection).
protocol RPCPushTarget: Sendable {
    func push(_ payload: ByteBuffer, toCall id: UInt64)
    func respond(_ result: Result<ByteBuffer, RPCError>, to call: RPCResponder.Call)
}

/// Completes one call of a callback function (``RPCFunctionTable/registerCallback(_:id:handler:)``), from any
/// thread. Only the first completion counts; later ones are ignored.
public struct RPCResponder: Sendable {
    /// The call a server connection is waiting for.
    struct Call: Sendable {
        var id: UInt64
        var service: UInt64
        var function: UInt64
        /// The connection loop's clock (`uptimeNanoseconds`) when the request was read.
        var startedAt: UInt64
    }

    private enum Sink: Sendable {
        case closure(@Sendable (Result<ByteBuffer, RPCError>) -> Void)
        /// A server connection: no allocation per call.
        case connection(any RPCPushTarget, Call)
    }

    private let sink: Sink

    /// A responder that hands the result to `completion` (for tests and in-process dispatch).
    public init(_ completion: @escaping @Sendable (Result<ByteBuffer, RPCError>) -> Void) {
        sink = .closure(completion)
    }

    init(target: any RPCPushTarget, call: Call) {
        sink = .connection(target, call)
    }

    /// Answers with `payload`.
    public func succeed(_ payload: ByteBuffer) { complete(.success(payload)) }

    /// Answers with `error`.
    public func fail(_ error: RPCError) { complete(.failure(error)) }

    /// Answers with `result`.
    public func complete(_ result: Result<ByteBuffer, RPCError>) {
        switch sink {
        case .closure(let completion): completion(result)
        case .connection(let target, let call): target.respond(result, to: call)
        }
    }
}

/// The functions of one service, by id.
public struct RPCFunctionTable: Sendable {
    /// A unary function: decodes its argument from the payload, runs, encodes its result.
    public typealias Handler = nonisolated(nonsending) @Sendable (ByteBuffer, RPCCallContext) async throws -> ByteBuffer
    /// A streaming function: pushes any number of messages, and ends the stream by returning (or throwing).
    public typealias StreamHandler = @Sendable (ByteBuffer, RPCCallContext, RPCPushWriter) async throws -> Void
    /// A unary function that runs without a task: it starts the work and returns, and the work answers through
    /// the responder later, from any thread. An error thrown before returning answers the call at once.
    public typealias CallbackHandler = @Sendable (ByteBuffer, RPCCallContext, RPCResponder) throws -> Void

    enum Function: Sendable {
        case unary(Handler)
        case stream(StreamHandler)
        case callback(CallbackHandler)
    }

    private var handlers: [UInt64: Function] = [:]
    private var names: [UInt64: String] = [:]

    /// Creates an empty table.
    public init() {}

    /// Adds a unary function under the id of `name` (see ``RPCFunctionID``).
    ///
    /// - Precondition: no other function of this service hashes to the same id. A collision is a programming
    ///   error in the service's declaration, found the first time its table is built.
    public mutating func register(_ name: String, handler: @escaping Handler) {
        add(name, id: RPCFunctionID.of(name), .unary(handler))
    }

    /// Adds a unary function under an id computed ahead of time (the `@Service` macro computes
    /// `RPCFunctionID.of(name)` at compile time) or chosen explicitly.
    public mutating func register(_ name: String, id: UInt64, handler: @escaping Handler) {
        add(name, id: id, .unary(handler))
    }

    /// Adds a unary function that runs without a Swift task, under an id computed ahead of time or chosen
    /// explicitly.
    ///
    /// For handlers whose work completes elsewhere (an event loop, a callback): the server calls `handler` on
    /// the connection's event loop, and the responder hands the answer back to the connection from whatever
    /// thread produces it. There is no task to create, resume or cancel, so a call costs no hop through the
    /// cooperative thread pool. The handler must not block. When the caller gives up (deadline, cancellation)
    /// a later answer is dropped; the work itself is not interrupted.
    public mutating func registerCallback(_ name: String, id: UInt64, handler: @escaping CallbackHandler) {
        add(name, id: id, .callback(handler))
    }

    /// Adds a streaming function under the id of `name`. Its caller receives the pushed messages as an
    /// asynchronous sequence; the stream ends when the handler returns, or fails when it throws.
    public mutating func registerStream(_ name: String, handler: @escaping StreamHandler) {
        add(name, id: RPCFunctionID.of(name), .stream(handler))
    }

    private mutating func add(_ name: String, id: UInt64, _ function: Function) {
        if let existing = names[id] {
            preconditionFailure("RPC function ids collide: '\(existing)' and '\(name)' both hash to \(id)")
        }
        handlers[id] = function
        names[id] = name
    }

    func function(for id: UInt64) -> Function? { handlers[id] }

    /// The name of function `id`, if the table has it.
    public func name(of id: UInt64) -> String? { names[id] }

    /// The number of functions.
    public var count: Int { handlers.count }
}

/// Services registered by 64-bit service id, shared by every connection of a server (and by the in-process
/// shortcut). Services can be registered and unregistered while the server runs.
public final class RPCRouter: Sendable {
    /// A registered table, boxed so that a lookup retains one object instead of copying the table.
    private final class Entry: Sendable {
        let table: RPCFunctionTable
        init(_ table: RPCFunctionTable) { self.table = table }
    }

    private let services = Mutex<[UInt64: Entry]>([:])

    /// Creates an empty router.
    public init() {}

    /// Registers `service` under `id`, replacing any service registered there before. The service's function
    /// table is built once, here.
    public func register(_ service: any RPCService, as id: UInt64) {
        let table = service.functions
        let entry = Entry(table)
        services.withLock { $0[id] = entry }
    }

    /// Removes the service registered under `id`; calls already running finish.
    public func unregister(_ id: UInt64) {
        _ = services.withLock { $0.removeValue(forKey: id) }
    }

    /// Whether a service is registered under `id`.
    public func contains(_ id: UInt64) -> Bool {
        services.withLock { $0[id] != nil }
    }

    /// Runs function `function` of service `service` on `payload`.
    ///
    /// For a streaming function, each message it pushes goes to `push`, and the result is empty.
    ///
    /// - Throws: ``RPCError`` with `serviceNotFound` or `functionNotFound` for unknown ids, `badRequest` when
    ///   the handler fails to decode its payload (a `WireError`), the handler's own ``RPCError`` as is,
    ///   `cancelled` when the call's task was cancelled, and `handlerError` with the message of any other error
    ///   the handler throws.
    public nonisolated(nonsending) func dispatch(
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer,
        timeout: Duration? = nil,
        push: RPCPushWriter = .discarding
    ) async throws(RPCError) -> ByteBuffer {
        let entry = try lookup(service: service, function: function)
        return try await run(
            entry, service: service, function: function, payload: payload, timeout: timeout, push: push)
    }

    /// The function `function` of service `service`.
    ///
    /// - Throws: ``RPCError`` with `serviceNotFound` or `functionNotFound`.
    func lookup(service: UInt64, function: UInt64) throws(RPCError) -> RPCFunctionTable.Function {
        guard let target = services.withLock({ $0[service] }) else {
            throw RPCError(code: .serviceNotFound, message: "no service \(service)")
        }
        guard let entry = target.table.function(for: function) else {
            throw RPCError(code: .functionNotFound, message: "no function \(function) in service \(service)")
        }
        return entry
    }

    /// Runs a function found by ``lookup(service:function:)``; see ``dispatch(service:function:payload:timeout:push:)``.
    nonisolated(nonsending) func run(
        _ entry: RPCFunctionTable.Function,
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer,
        timeout: Duration?,
        push: RPCPushWriter
    ) async throws(RPCError) -> ByteBuffer {
        let context = RPCCallContext(service: service, function: function, timeout: timeout)
        do {
            switch entry {
            case .unary(let handler):
                return try await handler(payload, context)
            case .stream(let handler):
                try await handler(payload, context, push)
                return ByteBuffer()
            case .callback(let handler):
                // In-process callers and handlers off the server's fast path: wait for the responder.
                let box = RPCCallBox()
                try handler(payload, context, RPCResponder { result in box.complete(result) })
                let result = await withUnsafeContinuation { continuation in _ = box.attach(continuation) }
                return try result.get()
            }
        } catch {
            throw Self.callError(error)
        }
    }

    /// The ``RPCError`` a caller sees for an error a handler threw.
    static func callError(_ error: any Error) -> RPCError {
        switch error {
        case let error as RPCError:
            return error
        case let error as WireError:
            return RPCError(code: .badRequest, message: "the request did not decode: \(error.message)")
        case is CancellationError:
            return RPCError(code: .cancelled, message: "the call was cancelled")
        default:
            if Task.isCancelled { return RPCError(code: .cancelled, message: "the call was cancelled: \(error)") }
            return RPCError(code: .handlerError, message: String(describing: error))
        }
    }
}
