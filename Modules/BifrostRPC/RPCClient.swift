import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Settings of an ``RPCClient``. Every knob has a documented default.
public struct RPCClientConfiguration: Sendable {
    /// How long a connection attempt may take. Default: 1 s.
    public var connectTimeout: Duration = .seconds(1)
    /// The deadline of a call that does not set one. `nil` waits for ever. Default: 30 s.
    public var defaultTimeout: Duration? = .seconds(30)
    /// The largest frame accepted from a server. Default: 16 MiB.
    public var maxFrameSize: Int = 16 << 20
    /// The wait before the first reconnection attempt after a failed connect; it doubles with each further
    /// failure, up to ``maxReconnectBackoff``, with ±50% jitter. While backing off, calls to that address fail
    /// at once with `unavailable` instead of waiting. Default: 50 ms.
    public var initialReconnectBackoff: Duration = .milliseconds(50)
    /// The longest wait between reconnection attempts. Default: 2 s.
    public var maxReconnectBackoff: Duration = .seconds(2)
    /// A connection with nothing received for this long is probed with a ping. Default: 5 s.
    public var keepaliveInterval: Duration = .seconds(5)
    /// A ping unanswered for this long closes the connection and fails its calls with `unavailable`: this is
    /// how a peer that vanished without closing (a partition, a dead host) is detected, within
    /// `keepaliveInterval + keepaliveTimeout` (plus one check period). Any byte received counts as an answer,
    /// so a busy connection is never probed. Too small a timeout closes healthy connections whose peer is
    /// briefly overloaded. Default: 5 s.
    public var keepaliveTimeout: Duration = .seconds(5)
    /// The most pushed messages a stream buffers for a consumer that has not read them yet. A stream whose
    /// consumer falls further behind fails with `resourceExhausted` (and the call is cancelled on the server)
    /// instead of growing without bound or dropping messages silently. Default: 65,536.
    public var maxBufferedStreamMessages: Int = 65_536
    /// Whether calls to an address served by an ``RPCServer`` in this process skip the socket. Default: true.
    public var inProcessShortcut: Bool = true
    /// Outgoing frames are coalesced into one socket write until this many bytes are pending; then they go out
    /// at once, so that the server starts on them while the client produces the rest. Whatever remains goes out
    /// at the end of the event-loop tick. Default: 2 KiB (see `docs/benchmarks.md`, "RPC").
    public var writeBatchBytes: Int = 2048

    /// Creates the default configuration.
    public init() {}
}

/// A client of RPC servers: one multiplexed connection per address, opened lazily, reopened after failures.
///
/// Calls carry request ids, so any number run at once over one connection and complete in any order. Each
/// call has a deadline; a call cancelled by its task or past its deadline sends a `cancel` frame, and a reply
/// that arrives later is dropped. When a peer is down, calls fail fast with `unavailable` while the client
/// backs off (with jitter) before reconnecting; after a server restart the next call reconnects.
public final class RPCClient: Sendable {
    private let configuration: RPCClientConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let slots = Mutex<[RPCAddress: Slot]>([:])
    private let closed = Atomic<Bool>(false)

    private enum Slot {
        case connecting(EventLoopFuture<RPCClientConnection>, attempts: Int)
        case connected(RPCClientConnection)
        case backingOff(until: NIODeadline, attempts: Int)
    }

    /// Creates a client. It opens no connection until the first call.
    public init(
        configuration: RPCClientConfiguration = RPCClientConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "bifrost.rpc.client")
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    /// Calls `function` of `service` at `address` and returns the encoded result.
    ///
    /// - Parameter timeout: the call's deadline; `nil` uses ``RPCClientConfiguration/defaultTimeout``.
    /// - Throws: ``RPCError``: the server's error, `deadlineExceeded`, `cancelled`, or `unavailable` when the
    ///   server cannot be reached or the connection is lost with the call in flight.
    public nonisolated(nonsending) func call(
        _ address: RPCAddress,
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer,
        timeout: Duration? = nil
    ) async throws(RPCError) -> ByteBuffer {
        let timeout = timeout ?? configuration.defaultTimeout
        if configuration.inProcessShortcut, let router = RPCInProcessRegistry.shared.router(at: address) {
            return try await Self.callInProcess(router, service, function, payload, timeout)
        }
        // An established connection needs no suspension to find: only a first call (or one after a
        // disconnection) awaits the connect.
        let connection: RPCClientConnection
        if let established = establishedConnection(to: address) {
            connection = established
        } else {
            connection = try await self.connection(to: address)
        }
        return try await connection.call(service: service, function: function, payload: payload, timeout: timeout)
    }

    /// Calls `function` of `service` at `address` and hands the result to `completion`, which runs on the
    /// connection's event loop (or, while a connection is being set up or for the in-process shortcut, on a task).
    ///
    /// For callers on event loops (the Raft transport): over an established connection no Swift task is created,
    /// so the call costs one hop to the connection's loop and the result one hop back. Errors are those of
    /// ``call(_:service:function:payload:timeout:)``.
    public func call(
        _ address: RPCAddress,
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer,
        timeout: Duration? = nil,
        completion: @escaping @Sendable (Result<ByteBuffer, RPCError>) -> Void
    ) {
        let timeout = timeout ?? configuration.defaultTimeout
        let inProcess = configuration.inProcessShortcut && RPCInProcessRegistry.shared.router(at: address) != nil
        if !inProcess, let connection = establishedConnection(to: address) {
            connection.call(
                service: service, function: function, payload: payload, timeout: timeout, completion: completion)
            return
        }
        Task {
            do throws(RPCError) {
                completion(
                    .success(
                        try await call(
                            address, service: service, function: function, payload: payload, timeout: timeout)
                    ))
            } catch {
                completion(.failure(error))
            }
        }
    }

    /// A task executor on the event loop of the connection to `address` (connecting first if needed).
    ///
    /// Tasks that make many calls to one server run fastest with it as their preference
    /// (`Task(executorPreference:)`, `group.addTask(executorPreference:)`): each call is then written, and its
    /// reply resumed, on the connection's own thread, with no hop to the cooperative thread pool and back. Keep
    /// such tasks short of blocking work: they share the thread with the connection's I/O.
    public func executor(for address: RPCAddress) async throws(RPCError) -> EventLoopTaskExecutor {
        EventLoopTaskExecutor(try await connection(to: address).channel.eventLoop)
    }

    /// The open, usable connection to `address`, if there is one and the client is not shut down.
    private func establishedConnection(to address: RPCAddress) -> RPCClientConnection? {
        if closed.load(ordering: .relaxed) { return nil }
        return slots.withLock { slots in
            if case .connected(let connection) = slots[address], connection.isUsable { return connection }
            return nil
        }
    }

    /// Calls a streaming function and returns the messages the server pushes, in order. The sequence ends when
    /// the server's handler returns and throws an ``RPCError`` when it fails or the connection is lost. Ending
    /// the iteration early (or cancelling its task) cancels the call on the server.
    public func stream(
        _ address: RPCAddress,
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer
    ) async throws(RPCError) -> AsyncThrowingStream<ByteBuffer, any Error> {
        if configuration.inProcessShortcut, let router = RPCInProcessRegistry.shared.router(at: address) {
            return Self.streamInProcess(
                router, service, function, payload, limit: configuration.maxBufferedStreamMessages)
        }
        let connection = try await connection(to: address)
        return connection.stream(
            service: service,
            function: function,
            payload: payload,
            limit: configuration.maxBufferedStreamMessages
        )
    }

    /// The number of open connections (one per address at most; calls that take the in-process shortcut open
    /// none).
    public var connectionCount: Int {
        slots.withLock { all in
            all.values.reduce(0) { count, slot in
                if case .connected = slot { return count + 1 }
                return count
            }
        }
    }

    /// Closes every connection; calls in flight fail with `unavailable`.
    public func shutdown() async {
        closed.store(true, ordering: .relaxed)
        let connections = slots.withLock { all -> [RPCClientConnection] in
            defer { all.removeAll() }
            return all.values.compactMap { slot in
                if case .connected(let connection) = slot { return connection }
                return nil
            }
        }
        for connection in connections { await connection.close() }
    }

    // MARK: Connections

    private func connection(to address: RPCAddress) async throws(RPCError) -> RPCClientConnection {
        if closed.load(ordering: .relaxed) {
            throw RPCError(code: .unavailable, message: "the client is shut down")
        }
        enum Next {
            case ready(RPCClientConnection)
            case wait(EventLoopFuture<RPCClientConnection>)
            case refuse(NIODeadline)
            case connect(EventLoopPromise<RPCClientConnection>, attempts: Int)
        }
        let now = NIODeadline.now()
        let next = slots.withLock { slots -> Next in
            var attempts = 0
            switch slots[address] {
            case .connected(let connection) where connection.isUsable:
                return .ready(connection)
            case .connecting(let future, _):
                return .wait(future)
            case .backingOff(let until, let previous):
                if now < until { return .refuse(until) }
                attempts = previous
            case .connected, .none:
                break
            }
            // The connection's loop: the promise and the channel take the same one, so the group's round robin
            // advances once per connection (twice would put every connection of a two-loop group on one loop).
            let loop = group.next()
            let promise = loop.makePromise(of: RPCClientConnection.self)
            slots[address] = .connecting(promise.futureResult, attempts: attempts)
            return .connect(promise, attempts: attempts)
        }
        switch next {
        case .ready(let connection):
            return connection
        case .wait(let future):
            do { return try await future.get() } catch { throw Self.unavailable(address, error) }
        case .refuse(let until):
            let wait = Double(until.uptimeNanoseconds - now.uptimeNanoseconds) / 1e6
            throw RPCError(
                code: .unavailable,
                message: "\(address) is unreachable; retrying in \(Int(wait.rounded(.up))) ms"
            )
        case .connect(let promise, let attempts):
            do {
                let connection = try await RPCClientConnection.connect(
                    to: address,
                    group: promise.futureResult.eventLoop,
                    configuration: configuration
                )
                slots.withLock { $0[address] = .connected(connection) }
                connection.closeFuture.whenComplete { [weak self] _ in self?.forget(connection, at: address) }
                promise.succeed(connection)
                return connection
            } catch {
                let backoff = backoff(afterFailures: attempts + 1)
                slots.withLock { $0[address] = .backingOff(until: .now() + backoff, attempts: attempts + 1) }
                logger.debug("connect failed", metadata: ["address": "\(address)", "error": "\(error)"])
                promise.fail(error)
                throw Self.unavailable(address, error)
            }
        }
    }

    private func forget(_ connection: RPCClientConnection, at address: RPCAddress) {
        slots.withLock { slots in
            if case .connected(let current) = slots[address], current === connection {
                slots[address] = nil
            }
        }
    }

    /// The backoff after `failures` consecutive failed connects: exponential, capped, with ±50% jitter (so a
    /// crowd of clients does not reconnect in lock step).
    private func backoff(afterFailures failures: Int) -> TimeAmount {
        let base = configuration.initialReconnectBackoff.nanoseconds
        let cap = configuration.maxReconnectBackoff.nanoseconds
        let exponential = base << min(failures - 1, 20)
        let bounded = min(exponential <= 0 ? cap : exponential, cap)
        return .nanoseconds(Int64(Double(bounded) * Double.random(in: 0.5...1.5)))
    }

    private static func unavailable(_ address: RPCAddress, _ error: any Error) -> RPCError {
        if let error = error as? RPCError { return error }
        return RPCError(code: .unavailable, message: "cannot reach \(address): \(error)")
    }

    // MARK: In-process shortcut

    private static func callInProcess(
        _ router: RPCRouter,
        _ service: UInt64,
        _ function: UInt64,
        _ payload: ByteBuffer,
        _ timeout: Duration?
    ) async throws(RPCError) -> ByteBuffer {
        // The handler runs in a task of its own, so that a deadline or a cancellation answers the caller at once
        // even if the handler ignores cancellation (as a remote call would).
        let box = RPCCallBox()
        let work = Task {
            do throws(RPCError) {
                box.complete(
                    .success(
                        try await router.dispatch(
                            service: service, function: function, payload: payload, timeout: timeout))
                )
            } catch {
                box.complete(.failure(error))
            }
        }
        let timer = timeout.map { timeout in
            Task {
                try await Task.sleep(for: timeout)
                if box.complete(.failure(RPCError(code: .deadlineExceeded, message: "no response within \(timeout)"))) {
                    work.cancel()
                }
            }
        }
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in _ = box.attach(continuation) }
        } onCancel: {
            if box.complete(.failure(RPCError(code: .cancelled, message: "the call was cancelled"))) { work.cancel() }
        }
        timer?.cancel()
        return try result.get()
    }

    private static func streamInProcess(
        _ router: RPCRouter,
        _ service: UInt64,
        _ function: UInt64,
        _ payload: ByteBuffer,
        limit: Int
    ) -> AsyncThrowingStream<ByteBuffer, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: ByteBuffer.self,
            bufferingPolicy: .bufferingOldest(limit)
        )
        let task = Task {
            do {
                let push = RPCPushWriter { message in
                    if case .dropped = continuation.yield(message) {
                        continuation.finish(throwing: RPCError.slowConsumer(limit: limit))
                    }
                }
                _ = try await router.dispatch(service: service, function: function, payload: payload, push: push)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}

extension RPCError {
    /// The error a stream ends with when its consumer falls more than `limit` messages behind.
    static func slowConsumer(limit: Int) -> RPCError {
        RPCError(
            code: .resourceExhausted,
            message: "the stream's consumer fell more than \(limit) messages behind; the stream was cancelled"
        )
    }
}
