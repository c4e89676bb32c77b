import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Settings of an ``RPCServer``. Every knob has a documented default.
public struct RPCServerConfiguration: Sendable {
    /// The address to listen on. Default: `127.0.0.1:0` (an ephemeral port; read it from
    /// ``RPCServer/localAddress``).
    public var address: RPCAddress = RPCAddress(host: "127.0.0.1", port: 0)
    /// The largest frame accepted, in bytes. A larger length prefix closes the connection. Default: 16 MiB.
    public var maxFrameSize: Int = 16 << 20
    /// Calls a connection may have running at once. At the limit the server stops reading from that
    /// connection until a call completes (backpressure; nothing is queued without bound). Default: 1,024.
    public var maxConcurrentCallsPerConnection: Int = 1024
    /// Connections accepted at once; further connections are closed on accept. Default: 4,096.
    public var maxConnections: Int = 4096
    /// How long a graceful shutdown waits for in-flight calls before closing connections. Default: 10 s.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Whether handlers start on their connection's event loop (and stay there until they suspend on something
    /// else), which saves two thread hops per call. Handlers must then never block: hand blocking work (disk
    /// syncs, CPU-heavy loops) to an actor or another executor. When false, handlers run on the global
    /// concurrent executor. Default: true.
    public var runsHandlersOnEventLoop: Bool = true
    /// Whether this server's router is also reachable in-process by clients of this process, skipping the
    /// socket (see ``RPCClient``). Default: true.
    public var registersInProcess: Bool = true

    /// Creates the default configuration.
    public init() {}
}

/// A server that hosts any number of services (by 64-bit service id) on one port.
///
/// Each connection carries many calls at once: frames carry request ids, calls run concurrently up to
/// ``RPCServerConfiguration/maxConcurrentCallsPerConnection``, and responses go back in completion order,
/// coalesced into one write per event-loop tick. Handlers can push messages to the caller over its connection.
///
/// Run it as a swift-service-lifecycle `Service` (``run()`` serves until graceful shutdown), or call
/// ``shutdown()`` yourself. Shutdown stops accepting, tells clients with a `goAway` frame, lets in-flight calls
/// finish within the grace period, then closes.
public final class RPCServer: Sendable {
    /// The services this server hosts. Register and unregister services at any time.
    public let router: RPCRouter
    /// The address the server is bound to (with the actual port when the configuration asked for port 0).
    public let localAddress: RPCAddress

    private let configuration: RPCServerConfiguration
    private let channel: any Channel
    private let connections: ConnectionRegistry
    private let stopped = AsyncSignal()
    private let stopping = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    private let logger: Logger

    private init(
        router: RPCRouter,
        localAddress: RPCAddress,
        configuration: RPCServerConfiguration,
        channel: any Channel,
        connections: ConnectionRegistry,
        logger: Logger
    ) {
        self.router = router
        self.localAddress = localAddress
        self.configuration = configuration
        self.channel = channel
        self.connections = connections
        self.logger = logger
    }

    /// Binds a server and starts accepting connections.
    public static func start(
        configuration: RPCServerConfiguration = RPCServerConfiguration(),
        router: RPCRouter = RPCRouter(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "bifrost.rpc.server")
    ) async throws -> RPCServer {
        let connections = ConnectionRegistry()
        let metrics = RPCServerMetrics()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { child in
                guard connections.add(child, limit: configuration.maxConnections) else {
                    logger.warning("connection limit reached; closing a new connection")
                    return child.close()
                }
                return child.eventLoop.makeCompletedFuture {
                    let handlers = child.pipeline.syncOperations
                    try handlers.addHandler(
                        ByteToMessageHandler(RPCFrameDecoder(maxFrameSize: configuration.maxFrameSize))
                    )
                    try handlers.addHandler(
                        RPCServerConnectionHandler(
                            router: router,
                            executor: configuration.runsHandlersOnEventLoop
                                ? EventLoopTaskExecutor(child.eventLoop) : nil,
                            maxConcurrentCalls: configuration.maxConcurrentCallsPerConnection,
                            metrics: metrics,
                            logger: logger
                        )
                    )
                }
            }
            .bind(host: configuration.address.host, port: configuration.address.port)
            .get()
        guard let bound = channel.localAddress, let port = bound.port else {
            try? await channel.close()
            throw RPCError(code: .unavailable, message: "the server socket has no local address")
        }
        let address = RPCAddress(host: configuration.address.host, port: port)
        let server = RPCServer(
            router: router,
            localAddress: address,
            configuration: configuration,
            channel: channel,
            connections: connections,
            logger: logger
        )
        if configuration.registersInProcess { RPCInProcessRegistry.shared.register(router, at: address) }
        logger.info("RPC server listening", metadata: ["address": "\(address)"])
        return server
    }

    /// The number of open connections.
    public var connectionCount: Int { connections.count }

    /// Whether the server still accepts connections and calls. It turns false during
    /// ``shutdown(gracePeriod:)`` once the listener is closed and every connection refuses new calls, while
    /// in-flight calls may still be finishing.
    public var isRunning: Bool { !draining.load(ordering: .relaxed) }

    /// Stops the server gracefully: no new connections, `goAway` to every client, in-flight calls finish (up
    /// to the grace period), then every connection closes. Safe to call more than once.
    public func shutdown(gracePeriod: Duration? = nil) async {
        if stopping.exchange(true, ordering: .relaxed) {
            await stopped.wait()
            return
        }
        if configuration.registersInProcess { RPCInProcessRegistry.shared.unregister(localAddress, router: router) }
        try? await channel.close()
        // Connections accepted while the listener closed are refused from here on.
        let open = connections.close()
        for child in open {
            try? await child.eventLoop.submit { child.pipeline.fireUserInboundEventTriggered(RPCServerDrainEvent()) }
                .get()
        }
        // From here on every connection refuses new calls.
        draining.store(true, ordering: .relaxed)
        let grace = gracePeriod ?? configuration.shutdownGracePeriod
        let loop = channel.eventLoop
        let deadline = loop.scheduleTask(in: grace.timeAmount) {
            for child in open { child.close(promise: nil) }
        }
        for child in open { try? await child.closeFuture.get() }
        deadline.cancel()
        logger.info("RPC server stopped", metadata: ["address": "\(localAddress)"])
        stopped.signal()
    }

    /// Waits until the server has stopped.
    public func waitUntilStopped() async {
        await stopped.wait()
    }
}

extension RPCServer: Service {
    /// Serves until graceful shutdown (or cancellation), then shuts down.
    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            await waitUntilStopped()
        } onCancelOrGracefulShutdown: {
            Task { await self.shutdown() }
        }
    }
}

/// Tells a connection handler to drain: refuse new calls, finish in-flight ones, then close.
struct RPCServerDrainEvent: Sendable {}

/// The open connections of a server.
final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Admits a new connection unless the registry is closed or full.
    func add(_ channel: any Channel, limit: Int) -> Bool {
        let added = state.withLock { state -> Bool in
            guard !state.closed, state.channels.count < limit else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        if added {
            channel.closeFuture.whenComplete { _ in
                _ = self.state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
        return added
    }

    var count: Int { state.withLock { $0.channels.count } }

    /// Refuses every later connection and returns the open ones.
    func close() -> [any Channel] {
        state.withLock { state in
            state.closed = true
            return Array(state.channels.values)
        }
    }
}

/// The server's side of one connection. Event-loop confined.
final class RPCServerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = RPCFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let router: RPCRouter
    private let maxConcurrentCalls: Int
    private let metrics: RPCServerMetrics
    private let logger: Logger
    private struct RunningCall {
        /// Nil only while the task is being started (it may run synchronously and complete at once).
        var task: Task<Void, Never>?
        var deadline: NIODeadline?
    }

    private var deadlineTimer = DeadlineTimer()

    private var calls: [UInt64: RunningCall] = [:]
    /// Requests decoded while the connection was at its concurrency limit. Reading stops at the limit, so this
    /// holds at most what one socket read delivered.
    private var queued: [RPCFrame] = []
    private var queuedHead = 0
    private var outbox: FrameOutbox?
    private var readPending = false
    private var draining = false
    private var context: ChannelHandlerContext?

    private let executor: EventLoopTaskExecutor?

    init(
        router: RPCRouter,
        executor: EventLoopTaskExecutor?,
        maxConcurrentCalls: Int,
        metrics: RPCServerMetrics,
        logger: Logger
    ) {
        self.router = router
        self.executor = executor
        self.maxConcurrentCalls = maxConcurrentCalls
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbox = FrameOutbox(allocator: context.channel.allocator)
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for call in calls.values { call.task?.cancel() }
        calls.removeAll()
        deadlineTimer.cancel()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if calls.count >= maxConcurrentCalls || queuedHead < queued.count {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .request:
            if calls.count >= maxConcurrentCalls {
                queued.append(unwrapInboundIn(data))
            } else {
                start(unwrapInboundIn(data))
            }
        case .cancel(let id):
            if abandon(id) {
                // The handler's task is cancelled; whatever it returns is dropped.
            } else if let index = queued[queuedHead...].firstIndex(where: { $0.requestID == id }) {
                queued.remove(at: index)
            }
            startQueuedCalls()
        case .ping(let id):
            send(.pong(id: id))
        case .pong, .goAway:
            break
        case .response, .failure, .push:
            fail(RPCError(code: .protocolViolation, message: "a client sent a server-side frame"))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RPCServerDrainEvent {
            draining = true
            send(.goAway)
            // Requests not yet started are refused; running ones finish.
            for frame in queued[queuedHead...] {
                if let id = frame.requestID {
                    send(.failure(id: id, error: RPCError(code: .unavailable, message: "the server is shutting down")))
                }
            }
            queued.removeAll()
            queuedHead = 0
            closeIfDrained()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let rpcError = error as? RPCError ?? RPCError(code: .unavailable, message: "\(error)")
        fail(rpcError)
    }

    private func fail(_ error: RPCError) {
        guard let context else { return }
        logger.debug("closing an RPC connection", metadata: ["error": "\(error)"])
        metrics.connectionErrors.increment()
        // Tell the peer why, then close; the server and its other connections carry on.
        send(.failure(id: 0, error: error))
        flush()
        context.close(promise: nil)
    }

    private func start(_ frame: RPCFrame) {
        if case .request(let id, let service, let function, let timeoutMicros, let payload) = frame {
            startCall(id: id, service: service, function: function, timeoutMicros: timeoutMicros, payload: payload)
        }
    }

    private var startingQueuedCalls = false

    private func startQueuedCalls() {
        // A call that completes synchronously calls back in here; the outer loop carries on instead.
        guard !startingQueuedCalls else { return }
        startingQueuedCalls = true
        defer { startingQueuedCalls = false }
        while calls.count < maxConcurrentCalls, queuedHead < queued.count {
            let next = queued[queuedHead]
            queuedHead += 1
            start(next)
        }
        if queuedHead == queued.count {
            queued.removeAll(keepingCapacity: true)
            queuedHead = 0
        }
        resumeReadingIfPossible()
    }

    private func startCall(id: UInt64, service: UInt64, function: UInt64, timeoutMicros: UInt64, payload: ByteBuffer) {
        guard let context else { return }
        if draining {
            send(.failure(id: id, error: RPCError(code: .unavailable, message: "the server is shutting down")))
            return
        }
        if calls[id] != nil {
            send(.failure(id: id, error: RPCError(code: .badRequest, message: "request id \(id) is already in use")))
            return
        }
        let router = self.router
        let metrics = self.metrics
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let timeout: Duration? = timeoutMicros == 0 ? nil : .microseconds(Int64(clamping: timeoutMicros))
        // Pushes and the final response take the same path (direct on the loop, or one `execute` each from
        // elsewhere), so they leave in the order the handler produced them.
        let push = RPCPushWriter { payload in
            if loop.inEventLoop {
                handler.value.send(.push(id: id, payload: payload), ifCallActive: id)
            } else {
                loop.execute { handler.value.send(.push(id: id, payload: payload), ifCallActive: id) }
            }
        }
        let start = ContinuousClock.now
        // Nobody waits past the caller's timeout: the work is cancelled then.
        var deadline: NIODeadline?
        if let timeout {
            let at = loop.now + timeout.timeAmount
            deadline = at
            deadlineTimer.arm(by: at, on: loop) { handler.value.sweepDeadlines() }
        }
        // Registered before the task starts: on the event loop the task runs synchronously until it first
        // suspends, and a handler that never suspends completes before `Task.immediate` returns.
        calls[id] = RunningCall(task: nil, deadline: deadline)
        let body: @Sendable () async -> Void = {
            let frame: RPCFrame
            do throws(RPCError) {
                let result = try await router.dispatch(
                    service: service,
                    function: function,
                    payload: payload,
                    timeout: timeout,
                    push: push
                )
                frame = .response(id: id, payload: result)
            } catch {
                frame = .failure(id: id, error: error)
            }
            metrics.record(service: service, function: function, frame: frame, since: start)
            if loop.inEventLoop {
                handler.value.complete(id: id, frame: frame)
            } else {
                loop.execute { handler.value.complete(id: id, frame: frame) }
            }
        }
        let task: Task<Void, Never>
        if let executor, #available(macOS 26, iOS 26, tvOS 26, watchOS 26, visionOS 26, *) {
            task = Task.immediate(executorPreference: executor, operation: body)
        } else {
            task = Task(executorPreference: executor, operation: body)
        }
        calls[id]?.task = task
    }

    /// Cancels every call whose caller's timeout has passed, then re-arms the timer for the earliest one left.
    private func sweepDeadlines() {
        guard let context else { return }
        deadlineTimer.fired()
        let now = context.eventLoop.now
        var earliest: NIODeadline?
        var expired: [UInt64] = []
        for (id, call) in calls {
            guard let deadline = call.deadline else { continue }
            if deadline <= now {
                expired.append(id)
            } else if earliest.map({ deadline < $0 }) ?? true {
                earliest = deadline
            }
        }
        for id in expired { _ = abandon(id) }
        if let earliest {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            deadlineTimer.arm(by: earliest, on: context.eventLoop) { handler.value.sweepDeadlines() }
        }
        if !expired.isEmpty {
            startQueuedCalls()
            closeIfDrained()
        }
    }

    /// Cancels a running call whose caller is gone; returns whether it was running.
    private func abandon(_ id: UInt64) -> Bool {
        guard let call = calls.removeValue(forKey: id) else { return false }
        call.task?.cancel()
        return true
    }

    private func complete(id: UInt64, frame: RPCFrame) {
        guard calls.removeValue(forKey: id) != nil else { return }  // cancelled or timed out: nobody waits
        send(frame)
        startQueuedCalls()
        closeIfDrained()
    }

    private func send(_ frame: RPCFrame, ifCallActive id: UInt64) {
        if calls[id] != nil { send(frame) }
    }

    private func send(_ frame: RPCFrame) {
        guard let context, outbox?.enqueue(frame) == true else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().execute { handler.value.flush() }
    }

    private func flush() {
        guard let context else { return }
        outbox?.flush(context: context)
    }

    private func resumeReadingIfPossible() {
        if readPending, calls.count < maxConcurrentCalls, queuedHead == queued.count, let context {
            readPending = false
            context.read()
        }
    }

    private func closeIfDrained() {
        guard draining, calls.isEmpty, queuedHead == queued.count, let context else { return }
        flush()
        context.close(promise: nil)
    }
}

/// Server metrics through swift-metrics, per service and function: calls, errors by code, and latency.
final class RPCServerMetrics: Sendable {
    private struct Key: Hashable {
        var service: UInt64
        var function: UInt64
    }

    private struct Handles: Sendable {
        var calls: Counter
        var latency: Metrics.Timer
        var errors: [UInt8: Counter]
    }

    let connectionErrors = Counter(label: "bifrost_rpc_server_connection_errors_total")
    private let handles = Mutex<[Key: Handles]>([:])

    func record(service: UInt64, function: UInt64, frame: RPCFrame, since start: ContinuousClock.Instant) {
        let key = Key(service: service, function: function)
        var errorCounter: Counter?
        let entry = handles.withLock { all -> Handles in
            if case .response = frame, let entry = all[key] { return entry }  // the common case: no allocation
            let dimensions = [("service", String(service)), ("function", String(function))]
            var entry =
                all[key]
                ?? Handles(
                    calls: Counter(label: "bifrost_rpc_server_calls_total", dimensions: dimensions),
                    latency: Metrics.Timer(label: "bifrost_rpc_server_call_duration", dimensions: dimensions),
                    errors: [:]
                )
            if case .failure(_, let error) = frame {
                let counter =
                    entry.errors[error.code.rawValue]
                    ?? Counter(
                        label: "bifrost_rpc_server_errors_total",
                        dimensions: dimensions + [("code", "\(error.code)")]
                    )
                entry.errors[error.code.rawValue] = counter
                errorCounter = counter
            }
            all[key] = entry
            return entry
        }
        entry.calls.increment()
        entry.latency.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        errorCounter?.increment()
    }
}

/// A one-shot signal that any number of tasks can wait for.
final class AsyncSignal: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Void, Never>])
        case signalled
    }

    private let state = Mutex(State.waiting([]))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                switch state {
                case .signalled:
                    return true
                case .waiting(var waiters):
                    waiters.append(continuation)
                    state = .waiting(waiters)
                    return false
                }
            }
            if resumeNow { continuation.resume() }
        }
    }

    func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard case .waiting(let waiters) = state else { return [] }
            state = .signalled
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
