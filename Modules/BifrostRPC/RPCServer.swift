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
    /// Whether handlers start on their connection's event loop, at once, within the read that brought the
    /// request: a handler that completes without suspending costs no thread hop at all. After its first
    /// suspension a handler continues on the global concurrent executor. Handlers must never block before they
    /// first suspend: hand blocking work (disk syncs, CPU-heavy loops) to an actor or another executor. When
    /// false, handlers run on the global concurrent executor from the start. Default: true.
    public var runsHandlersOnEventLoop: Bool = true
    /// Outgoing frames are coalesced into one socket write until this many bytes are pending; then they go out
    /// at once, so that the client starts on them while the server produces the rest. Whatever remains goes out
    /// at the end of the event-loop tick. Default: 2 KiB (see `docs/benchmarks.md`, "RPC").
    public var writeBatchBytes: Int = 2048
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
                        RPCServerConnectionHandler(
                            router: router,
                            executor: configuration.runsHandlersOnEventLoop
                                ? EventLoopTaskExecutor(child.eventLoop) : nil,
                            maxConcurrentCalls: configuration.maxConcurrentCallsPerConnection,
                            maxFrameSize: configuration.maxFrameSize,
                            writeBatchBytes: configuration.writeBatchBytes,
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
    typealias InboundIn = ByteBuffer
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
    private var callMetrics = RPCServerCallMetrics()

    private var calls: [UInt64: RunningCall] = [:]
    /// Requests decoded while the connection was at its concurrency limit. Reading stops at the limit, so this
    /// holds at most what one socket read delivered.
    private var queued: [RPCFrame] = []
    private var queuedHead = 0
    private var reader: FrameReader
    private let writeBatchBytes: Int
    private var outbox: FrameOutbox?
    private var readPending = false
    /// Set once the connection closes or this side closes it: no more frames are handled.
    private var closing = false
    private var draining = false
    private var context: ChannelHandlerContext?

    private let executor: EventLoopTaskExecutor?
    /// Routes handlers' pushes to this connection (set when the handler is added).
    private var pushTarget: ServerPushTarget?

    init(
        router: RPCRouter,
        executor: EventLoopTaskExecutor?,
        maxConcurrentCalls: Int,
        maxFrameSize: Int,
        writeBatchBytes: Int,
        metrics: RPCServerMetrics,
        logger: Logger
    ) {
        self.reader = FrameReader(maxFrameSize: maxFrameSize)
        self.writeBatchBytes = writeBatchBytes
        self.router = router
        self.executor = executor
        self.maxConcurrentCalls = maxConcurrentCalls
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbox = FrameOutbox(allocator: context.channel.allocator, writeBatchBytes: writeBatchBytes)
        pushTarget = ServerPushTarget(handler: NIOLoopBound(self, eventLoop: context.eventLoop))
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
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
        reader.append(unwrapInboundIn(data))
        do {
            // Stops at the first bad frame, and once the connection is closing.
            while !closing, let frame = try reader.next() {
                handle(frame)
            }
        } catch {
            fail(error)
        }
    }

    private func handle(_ frame: RPCFrame) {
        switch frame {
        case .request:
            if calls.count >= maxConcurrentCalls {
                queued.append(frame)
            } else {
                start(frame)
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

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    private func fail(_ error: RPCError) {
        guard let context else { return }
        logger.debug("closing an RPC connection", metadata: ["error": "\(error)"])
        metrics.connectionErrors.increment()
        // Tell the peer why, then close; the server and its other connections carry on.
        send(.failure(id: 0, error: error))
        flush()
        closing = true
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
        guard let context, let pushTarget else { return }
        if draining {
            send(.failure(id: id, error: RPCError(code: .unavailable, message: "the server is shutting down")))
            return
        }
        if calls[id] != nil {
            send(.failure(id: id, error: RPCError(code: .badRequest, message: "request id \(id) is already in use")))
            return
        }
        let router = self.router
        let loop = context.eventLoop
        let timeout: Duration? = timeoutMicros == 0 ? nil : .microseconds(Int64(clamping: timeoutMicros))
        let now = loop.now  // the loop's clock, so that tests on an embedded loop control time
        // Nobody waits past the caller's timeout: the work is cancelled then.
        var deadline: NIODeadline?
        if let timeout {
            let at = now + timeout.timeAmount
            deadline = at
            if deadlineTimer.needsArming(by: at) {
                let handler = NIOLoopBound(self, eventLoop: loop)
                deadlineTimer.arm(by: at, on: loop) { handler.value.sweepDeadlines() }
            }
        }
        // Registered before the handler starts: on the event loop a task runs synchronously until it first
        // suspends, and a handler that never suspends completes before `Task.immediate` returns.
        calls[id] = RunningCall(task: nil, deadline: deadline)
        let entry: RPCFunctionTable.Function
        do throws(RPCError) {
            entry = try router.lookup(service: service, function: function)
        } catch {
            complete(
                FinishedCall(
                    id: id, service: service, function: function, startedAt: now.uptimeNanoseconds,
                    frame: .failure(id: id, error: error)))
            return
        }
        if case .callback(let handler) = entry {
            // No task: the handler answers through the responder, from whatever thread finishes the work.
            let responder = RPCResponder(
                target: pushTarget,
                call: RPCResponder.Call(id: id, service: service, function: function, startedAt: now.uptimeNanoseconds))
            do {
                try handler(payload, RPCCallContext(service: service, function: function, timeout: timeout), responder)
            } catch {
                responder.fail(RPCRouter.callError(error))
            }
            return
        }
        // The closure captures few references (each costs a retain and a release per call): the loop and the
        // handler are reached through `pushTarget`.
        let body: @Sendable () async -> Void = {
            let frame: RPCFrame
            do throws(RPCError) {
                // Pushes and the final response take the same path (direct on the loop, or through one queue
                // from elsewhere), so they leave in the order the handler produced them.
                let result = try await router.run(
                    entry,
                    service: service,
                    function: function,
                    payload: payload,
                    timeout: timeout,
                    push: RPCPushWriter(target: pushTarget, id: id)
                )
                frame = .response(id: id, payload: result)
            } catch {
                frame = .failure(id: id, error: error)
            }
            let finished = FinishedCall(
                id: id, service: service, function: function, startedAt: now.uptimeNanoseconds, frame: frame)
            if pushTarget.handler.eventLoop.inEventLoop {
                pushTarget.handler.value.complete(finished)
            } else {
                pushTarget.fromElsewhere(.complete(finished))
            }
        }
        let task: Task<Void, Never>
        if executor != nil, #available(macOS 26, iOS 26, tvOS 26, watchOS 26, visionOS 26, *) {
            // The handler starts here, on the loop, and a handler that never suspends answers within the read
            // that brought its request. No executor preference: a task that has one pays a lock on every
            // executor check (a tenth of the CPU of a busy connection), and a handler that suspends continues on
            // the global executor, its response reaching the loop through the connection's queue.
            task = Task.immediate(operation: body)
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

    /// Sends a finished call's response, unless its caller gave up.
    fileprivate func complete(_ call: FinishedCall) {
        if let context { callMetrics.record(call, now: context.eventLoop.now) }
        guard calls.removeValue(forKey: call.id) != nil else { return }  // cancelled or timed out: nobody waits
        send(call.frame)
        startQueuedCalls()
        closeIfDrained()
    }

    fileprivate func send(_ frame: RPCFrame, ifCallActive id: UInt64) {
        if calls[id] != nil { send(frame) }
    }

    private func send(_ frame: RPCFrame) {
        guard let context, outbox?.enqueue(frame, context: context) == true else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().execute { handler.value.scheduledFlush() }
    }

    private func scheduledFlush() {
        guard let context else { return }
        outbox?.scheduledFlush(context: context)
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
        closing = true
        context.close(promise: nil)
    }
}

/// Sends a connection's pushes, and the final responses of handlers that finish off the loop, from any thread.
private final class ServerPushTarget: RPCPushTarget {
    enum Output: Sendable {
        case push(id: UInt64, payload: ByteBuffer)
        case complete(FinishedCall)
    }

    let handler: NIOLoopBound<RPCServerConnectionHandler>
    private let outputs = LoopInbox<Output>()

    init(handler: NIOLoopBound<RPCServerConnectionHandler>) {
        self.handler = handler
    }

    func push(_ payload: ByteBuffer, toCall id: UInt64) {
        let loop = handler.eventLoop
        if loop.inEventLoop {
            handler.value.send(.push(id: id, payload: payload), ifCallActive: id)
        } else {
            fromElsewhere(.push(id: id, payload: payload))
        }
    }

    func respond(_ result: Result<ByteBuffer, RPCError>, to call: RPCResponder.Call) {
        let frame: RPCFrame
        switch result {
        case .success(let payload): frame = .response(id: call.id, payload: payload)
        case .failure(let error): frame = .failure(id: call.id, error: error)
        }
        let finished = FinishedCall(
            id: call.id, service: call.service, function: call.function, startedAt: call.startedAt, frame: frame)
        if handler.eventLoop.inEventLoop {
            handler.value.complete(finished)
        } else {
            fromElsewhere(.complete(finished))
        }
    }

    /// Hands a push or a final response made off the loop to the loop. Both go through one queue, so they leave
    /// in the order the handler produced them; a batch of them costs one scheduled closure.
    func fromElsewhere(_ output: Output) {
        guard outputs.enqueue(output) else { return }
        let handler = self.handler
        let outputs = self.outputs
        handler.eventLoop.execute {
            for output in outputs.drain() {
                switch output {
                case .push(let id, let payload): handler.value.send(.push(id: id, payload: payload), ifCallActive: id)
                case .complete(let call): handler.value.complete(call)
                }
            }
        }
    }
}

/// Server metrics through swift-metrics, per service and function: calls, errors by code, and latency.
final class RPCServerMetrics: Sendable {
    let connectionErrors = Counter(label: "bifrost_rpc_server_connection_errors_total")

    /// The handles of one function. Each connection keeps the ones it used (``RPCServerCallMetrics``), so that
    /// recording a call takes no lock and allocates nothing.
    struct Handles {
        var calls: Counter
        var latency: Metrics.Timer
        var errors: [UInt8: Counter] = [:]
        let dimensions: [(String, String)]

        init(service: UInt64, function: UInt64) {
            dimensions = [("service", String(service)), ("function", String(function))]
            calls = Counter(label: "bifrost_rpc_server_calls_total", dimensions: dimensions)
            latency = Metrics.Timer(label: "bifrost_rpc_server_call_duration", dimensions: dimensions)
        }

        mutating func errorCounter(_ code: RPCError.Code) -> Counter {
            if let counter = errors[code.rawValue] { return counter }
            let counter = Counter(
                label: "bifrost_rpc_server_errors_total", dimensions: dimensions + [("code", "\(code)")])
            errors[code.rawValue] = counter
            return counter
        }
    }
}

/// A connection's metric handles, by service and function. Event-loop confined.
struct RPCServerCallMetrics {
    private struct Key: Hashable {
        var service: UInt64
        var function: UInt64
    }

    private var handles: [Key: RPCServerMetrics.Handles] = [:]

    /// Records a finished call: one more call, its latency, and its error code if it failed.
    mutating func record(_ call: FinishedCall, now: NIODeadline) {
        let key = Key(service: call.service, function: call.function)
        let nanoseconds = Int64(clamping: now.uptimeNanoseconds &- call.startedAt)
        if case .response = call.frame, let entry = handles[key] {  // the common case
            entry.calls.increment()
            entry.latency.recordNanoseconds(nanoseconds)
            return
        }
        var entry = handles[key] ?? RPCServerMetrics.Handles(service: call.service, function: call.function)
        entry.calls.increment()
        entry.latency.recordNanoseconds(nanoseconds)
        if case .failure(_, let error) = call.frame { entry.errorCounter(error.code).increment() }
        handles[key] = entry
    }
}

/// A call whose handler has returned (or thrown), on its way to the connection's loop.
struct FinishedCall: Sendable {
    var id: UInt64
    var service: UInt64
    var function: UInt64
    /// The loop's clock (`uptimeNanoseconds`) when the request was read.
    var startedAt: UInt64
    var frame: RPCFrame
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
