import NIOCore
import NIOPosix
import Synchronization

/// One client connection: a thread-safe façade over the event-loop-confined ``RPCClientConnectionHandler``.
final class RPCClientConnection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<RPCClientConnectionHandler>
    private let nextID = Atomic<UInt64>(1)
    private let outgoing = LoopInbox<OutgoingCall>()
    private let usable = Atomic<Bool>(true)

    private init(channel: any Channel, handler: RPCClientConnectionHandler) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    static func connect(
        to address: RPCAddress,
        group: any EventLoopGroup,
        configuration: RPCClientConfiguration
    ) async throws -> RPCClientConnection {
        // The façade is built in the initializer, on the channel's loop, with the handler it wraps: looking
        // the handler up after connecting would race with a connection that closes at once.
        let made = Mutex<RPCClientConnection?>(nil)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout.timeAmount)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = RPCClientConnectionHandler(
                        keepaliveInterval: configuration.keepaliveInterval.timeAmount,
                        keepaliveTimeout: configuration.keepaliveTimeout.timeAmount,
                        maxFrameSize: configuration.maxFrameSize,
                        writeBatchBytes: configuration.writeBatchBytes
                    )
                    try channel.pipeline.syncOperations.addHandler(handler)
                    let connection = RPCClientConnection(channel: channel, handler: handler)
                    handler.onGoAway = { [weak connection] in connection?.usable.store(false, ordering: .relaxed) }
                    made.withLock { $0 = connection }
                }
            }
            .connect(host: address.host, port: address.port)
            .get()
        guard let connection = made.withLock({ $0 }) else {
            try? await channel.close()
            throw RPCError(code: .unavailable, message: "internal: the connection was not initialized")
        }
        channel.closeFuture.whenComplete { _ in connection.usable.store(false, ordering: .relaxed) }
        return connection
    }

    /// Whether new calls may use this connection (open, and no `goAway` received).
    var isUsable: Bool { usable.load(ordering: .relaxed) && channel.isActive }

    var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    func close() async {
        try? await channel.close()
    }

    nonisolated(nonsending) func call(
        service: UInt64, function: UInt64, payload: ByteBuffer, timeout: Duration?
    ) async throws(RPCError)
        -> ByteBuffer
    {
        let box = RPCCallBox()
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let handler = self.handler
        let loop = channel.eventLoop
        let result: Result<ByteBuffer, RPCError> = await withTaskCancellationHandler {
            // The box resumes the continuation exactly once, so the unchecked variant is safe.
            await withUnsafeContinuation { continuation in
                guard box.attach(continuation) else { return }
                submit(id: id, service: service, function: function, payload: payload, timeout: timeout, box: box)
            }
        } onCancel: {
            if box.complete(.failure(RPCError(code: .cancelled, message: "the call was cancelled"))) {
                loop.execute { handler.value.abandon(id: id) }
            }
        }
        return try result.get()
    }

    /// Starts a call whose result goes to `completion`, without a task: for callers on event loops.
    func call(
        service: UInt64, function: UInt64, payload: ByteBuffer, timeout: Duration?,
        completion: @escaping @Sendable (Result<ByteBuffer, RPCError>) -> Void
    ) {
        submit(
            id: nextID.wrappingAdd(1, ordering: .relaxed).oldValue, service: service, function: function,
            payload: payload, timeout: timeout, box: RPCCallBox(completion: completion))
    }

    /// Hands a call to the connection's loop. A caller already on the loop (see `RPCClient.executor(for:)`)
    /// writes it itself; calls made together elsewhere reach the loop together, and only the first of a batch
    /// wakes the loop.
    private func submit(
        id: UInt64, service: UInt64, function: UInt64, payload: ByteBuffer, timeout: Duration?, box: RPCCallBox
    ) {
        let frame = RPCFrame.request(
            id: id, service: service, function: function, timeoutMicros: timeout?.wireMicroseconds ?? 0,
            payload: payload)
        let handler = self.handler
        let loop = channel.eventLoop
        if loop.inEventLoop {
            handler.value.start(id: id, frame: frame, box: box, timeout: timeout?.timeAmount)
            return
        }
        if outgoing.enqueue(OutgoingCall(id: id, frame: frame, box: box, timeout: timeout?.timeAmount)) {
            let outgoing = self.outgoing
            loop.execute { handler.value.start(outgoing.drain()) }
        }
    }

    func stream(
        service: UInt64,
        function: UInt64,
        payload: ByteBuffer,
        limit: Int
    ) -> AsyncThrowingStream<ByteBuffer, any Error> {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: ByteBuffer.self,
            bufferingPolicy: .bufferingOldest(limit)
        )
        let frame = RPCFrame.request(id: id, service: service, function: function, timeoutMicros: 0, payload: payload)
        let handler = self.handler
        let loop = channel.eventLoop
        continuation.onTermination = { termination in
            if case .cancelled = termination { loop.execute { handler.value.abandon(id: id) } }
        }
        loop.execute {
            handler.value.startStream(id: id, frame: frame, continuation: continuation, limit: limit)
        }
        return stream
    }
}

/// A call on its way from a caller's task to the connection's event loop.
struct OutgoingCall: Sendable {
    var id: UInt64
    var frame: RPCFrame
    var box: RPCCallBox
    var timeout: TimeAmount?
}

/// The result slot of one unary call: resumed exactly once, by the response, the deadline, cancellation or
/// the connection closing, whichever comes first.
final class RPCCallBox: Sendable {
    private enum State {
        case idle
        case waiting(UnsafeContinuation<Result<ByteBuffer, RPCError>, Never>)
        case callback(@Sendable (Result<ByteBuffer, RPCError>) -> Void)
        case done(Result<ByteBuffer, RPCError>?)
    }

    private let state: Mutex<State>

    /// A box a task attaches its continuation to (``attach(_:)``).
    init() { state = Mutex(.idle) }

    /// A box that hands the result to `completion` (on whatever thread completes the call: usually the
    /// connection's event loop). No task is involved.
    init(completion: @escaping @Sendable (Result<ByteBuffer, RPCError>) -> Void) {
        state = Mutex(.callback(completion))
    }

    /// Attaches the caller; returns false (after resuming it) if the call already completed.
    func attach(_ continuation: UnsafeContinuation<Result<ByteBuffer, RPCError>, Never>) -> Bool {
        let early = state.withLock { state -> Result<ByteBuffer, RPCError>?? in
            switch state {
            case .idle:
                state = .waiting(continuation)
                return .none
            case .waiting, .callback:
                return .none
            case .done(let result):
                state = .done(nil)
                return .some(result)
            }
        }
        if case .some(let result) = early {
            continuation.resume(
                returning: result ?? .failure(RPCError(code: .cancelled, message: "the call was cancelled"))
            )
            return false
        }
        return true
    }

    /// Completes the call; returns false if it had completed already.
    @discardableResult
    func complete(_ result: Result<ByteBuffer, RPCError>) -> Bool {
        enum Action {
            case none
            case resume(UnsafeContinuation<Result<ByteBuffer, RPCError>, Never>)
            case call(@Sendable (Result<ByteBuffer, RPCError>) -> Void)
        }
        let action = state.withLock { state -> (Bool, Action) in
            switch state {
            case .idle:
                state = .done(result)
                return (true, .none)
            case .waiting(let continuation):
                state = .done(nil)
                return (true, .resume(continuation))
            case .callback(let completion):
                state = .done(nil)
                return (true, .call(completion))
            case .done:
                return (false, .none)
            }
        }
        switch action.1 {
        case .none: break
        case .resume(let continuation): continuation.resume(returning: result)
        case .call(let completion): completion(result)
        }
        return action.0
    }
}

/// The client's side of one connection. Event-loop confined.
final class RPCClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Pending {
        case unary(RPCCallBox, deadline: NIODeadline?)
        case stream(AsyncThrowingStream<ByteBuffer, any Error>.Continuation, limit: Int)
    }

    private var pending: [UInt64: Pending] = [:]
    private var reader: FrameReader
    private let writeBatchBytes: Int
    private var outbox: FrameOutbox?
    private var context: ChannelHandlerContext?
    private let keepaliveInterval: TimeAmount
    private let keepaliveTimeout: TimeAmount
    private var lastRead = NIODeadline.now()
    private var pingSent: NIODeadline?
    private var keepaliveTask: RepeatedTask?
    private var deadlineTimer = DeadlineTimer()
    private var closedError: RPCError?
    /// Active and not closing: checked per frame and per call instead of asking the channel.
    private var open = false
    var onGoAway: (() -> Void)?

    init(
        keepaliveInterval: TimeAmount, keepaliveTimeout: TimeAmount, maxFrameSize: Int = 16 << 20,
        writeBatchBytes: Int = 2048
    ) {
        self.reader = FrameReader(maxFrameSize: maxFrameSize)
        self.writeBatchBytes = writeBatchBytes
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbox = FrameOutbox(allocator: context.channel.allocator, writeBatchBytes: writeBatchBytes)
    }

    func channelActive(context: ChannelHandlerContext) {
        open = true
        lastRead = context.eventLoop.now
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let check = min(keepaliveInterval, keepaliveTimeout)
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: check, delay: check) { _ in
            handler.value.keepaliveTick()
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        open = false
        keepaliveTask?.cancel()
        deadlineTimer.cancel()
        let error = closedError ?? RPCError(code: .unavailable, message: "the connection closed")
        let all = pending
        pending.removeAll()
        for (_, call) in all {
            switch call {
            case .unary(let box, _):
                box.complete(.failure(error))
            case .stream(let continuation, _):
                continuation.finish(throwing: error)
            }
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = context.eventLoop.now
        pingSent = nil
        reader.append(unwrapInboundIn(data))
        do {
            // Stops at the first bad frame, and once the connection is closing.
            while open, let frame = try reader.next() {
                handle(frame, context: context)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    private func handle(_ frame: RPCFrame, context: ChannelHandlerContext) {
        switch frame {
        case .response(let id, let payload):
            finish(id: id, with: .success(payload))
        case .failure(let id, let error):
            if id == 0 {
                // A connection-level error from the server, which closes the connection next.
                closedError = error
            } else {
                finish(id: id, with: .failure(error))
            }
        case .push(let id, let payload):
            if case .stream(let continuation, let limit) = pending[id], case .dropped = continuation.yield(payload) {
                // The consumer is too far behind: fail the stream rather than buffer without bound.
                pending[id] = nil
                continuation.finish(throwing: RPCError.slowConsumer(limit: limit))
                send(.cancel(id: id))
            }
        case .ping(let id):
            send(.pong(id: id))
        case .pong:
            break
        case .goAway:
            onGoAway?()
        case .request, .cancel:
            closedError = RPCError(code: .protocolViolation, message: "the server sent a client-side frame")
            open = false
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closedError = error as? RPCError ?? RPCError(code: .unavailable, message: "\(error)")
        open = false
        context.close(promise: nil)
    }

    func start(_ calls: [OutgoingCall]) {
        for call in calls { start(id: call.id, frame: call.frame, box: call.box, timeout: call.timeout) }
    }

    func start(id: UInt64, frame: RPCFrame, box: RPCCallBox, timeout: TimeAmount?) {
        guard let context, open else {
            box.complete(.failure(closedError ?? RPCError(code: .unavailable, message: "the connection is closed")))
            return
        }
        var deadline: NIODeadline?
        if let timeout {
            let at = context.eventLoop.now + timeout
            deadline = at
            if deadlineTimer.needsArming(by: at) {
                let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
                deadlineTimer.arm(by: at, on: context.eventLoop) { handler.value.sweepDeadlines() }
            }
        }
        pending[id] = .unary(box, deadline: deadline)
        send(frame)
    }

    func startStream(
        id: UInt64,
        frame: RPCFrame,
        continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation,
        limit: Int
    ) {
        guard context != nil, open else {
            continuation.finish(
                throwing: closedError ?? RPCError(code: .unavailable, message: "the connection is closed")
            )
            return
        }
        pending[id] = .stream(continuation, limit: limit)
        send(frame)
    }

    /// The caller gave up (deadline, cancellation, or it stopped iterating): forget the call and tell the
    /// server, so that it stops the work. A reply arriving later finds no pending call and is dropped.
    func abandon(id: UInt64) {
        guard let call = pending.removeValue(forKey: id) else { return }
        switch call {
        case .unary: break
        case .stream(let continuation, _): continuation.finish()
        }
        send(.cancel(id: id))
    }

    private func finish(id: UInt64, with result: Result<ByteBuffer, RPCError>) {
        guard let call = pending.removeValue(forKey: id) else { return }  // late reply: the caller is gone
        switch call {
        case .unary(let box, _):
            box.complete(result)
        case .stream(let continuation, _):
            switch result {
            case .success: continuation.finish()
            case .failure(let error): continuation.finish(throwing: error)
            }
        }
    }

    /// Fails every call whose deadline has passed, then re-arms the timer for the earliest one left.
    private func sweepDeadlines() {
        guard let context else { return }
        deadlineTimer.fired()
        let now = context.eventLoop.now
        var earliest: NIODeadline?
        for (id, call) in pending {
            guard case .unary(let box, .some(let deadline)) = call else { continue }
            if deadline <= now {
                if box.complete(.failure(RPCError(code: .deadlineExceeded, message: "no response before the deadline")))
                {
                    abandon(id: id)
                } else {
                    pending[id] = nil
                }
            } else if earliest.map({ deadline < $0 }) ?? true {
                earliest = deadline
            }
        }
        if let earliest {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            deadlineTimer.arm(by: earliest, on: context.eventLoop) { handler.value.sweepDeadlines() }
        }
    }

    private func keepaliveTick() {
        guard let context else { return }
        // The loop's clock, so that tests on an embedded loop control time.
        let now = context.eventLoop.now
        if let pingSent {
            if now - pingSent >= keepaliveTimeout {
                closedError = RPCError(
                    code: .unavailable,
                    message: "the peer did not answer a keepalive ping within \(keepaliveTimeout)"
                )
                open = false
                context.close(promise: nil)
            }
        } else if now - lastRead >= keepaliveInterval {
            pingSent = now
            send(.ping(id: UInt64(truncatingIfNeeded: now.uptimeNanoseconds)))
        }
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
}
