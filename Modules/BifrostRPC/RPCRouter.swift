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

/// The functions of one service, by id.
public struct RPCFunctionTable: Sendable {
    /// A function: decodes its argument from the payload, runs, encodes its result.
    public typealias Handler = @Sendable (ByteBuffer, RPCCallContext) async throws -> ByteBuffer

    private var handlers: [UInt64: (name: String, handler: Handler)] = [:]

    /// Creates an empty table.
    public init() {}

    /// Adds `handler` under the id of `name` (see ``RPCFunctionID``).
    ///
    /// - Precondition: no other function of this service hashes to the same id. A collision is a programming
    ///   error in the service's declaration, found the first time it is registered.
    public mutating func register(_ name: String, handler: @escaping Handler) {
        let id = RPCFunctionID.of(name)
        if let existing = handlers[id] {
            preconditionFailure("RPC function ids collide: '\(existing.name)' and '\(name)' both hash to \(id)")
        }
        handlers[id] = (name, handler)
    }

    /// The handler of function `id`, if any.
    public func handler(for id: UInt64) -> Handler? { handlers[id]?.handler }

    /// The number of functions.
    public var count: Int { handlers.count }
}

/// Services registered by 64-bit service id, shared by every connection of a server (and by the in-process
/// shortcut). Services can be registered and unregistered while the server runs.
public final class RPCRouter: Sendable {
    private let services = Mutex<[UInt64: any RPCService]>([:])

    /// Creates an empty router.
    public init() {}

    /// Registers `service` under `id`, replacing any service registered there before.
    public func register(_ service: any RPCService, as id: UInt64) {
        services.withLock { $0[id] = service }
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
    /// - Throws: ``RPCError`` with `serviceNotFound` or `functionNotFound` for unknown ids, `badRequest` when
    ///   the handler fails to decode its payload (a `WireError`), the handler's own ``RPCError`` as is, and
    ///   `handlerError` with the message of any other error the handler throws.
    public func dispatch(
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer,
        timeout: Duration? = nil
    ) async throws(RPCError) -> ByteBuffer {
        guard let target = services.withLock({ $0[service] }) else {
            throw RPCError(code: .serviceNotFound, message: "no service \(service)")
        }
        guard let handler = target.functions.handler(for: function) else {
            throw RPCError(code: .functionNotFound, message: "no function \(function) in service \(service)")
        }
        do {
            return try await handler(payload, RPCCallContext(service: service, function: function, timeout: timeout))
        } catch let error as RPCError {
            throw error
        } catch let error as WireError {
            throw RPCError(code: .badRequest, message: "the request did not decode: \(error.message)")
        } catch is CancellationError {
            throw RPCError(code: .cancelled, message: "the call was cancelled")
        } catch {
            throw RPCError(code: .handlerError, message: String(describing: error))
        }
    }
}
