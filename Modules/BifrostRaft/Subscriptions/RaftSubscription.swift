import BifrostRPC
import BifrostWire

/// One event delivered to a subscriber.
public struct RaftSubscriptionEvent: Sendable, Hashable {
    /// The log index of the command that raised it.
    public var index: UInt64
    /// Its position among the events that command raised (from 0).
    public var ordinal: UInt32
    /// The encoded payload.
    public var payload: [UInt8]

    /// Creates an event.
    public init(index: UInt64, ordinal: UInt32, payload: [UInt8]) {
        self.index = index
        self.ordinal = ordinal
        self.payload = payload
    }
}

/// The events of one subscription, in commit order, each once. It follows the leader across failovers; when
/// the events it missed are older than what the new leader still buffers, it ends with
/// ``RaftClientError/Code/eventsLost`` instead of skipping them silently. Ending the iteration (or cancelling
/// its task) unsubscribes.
public struct RaftSubscription: AsyncSequence, Sendable {
    /// The element type.
    public typealias Element = RaftSubscriptionEvent
    /// The replicated subscription id.
    public let id: UInt64
    let events: AsyncThrowingStream<RaftSubscriptionEvent, any Error>

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<RaftSubscriptionEvent, any Error>.AsyncIterator

        /// The next event, `nil` once the subscription was cancelled.
        public mutating func next() async throws(RaftClientError) -> RaftSubscriptionEvent? {
            do {
                return try await base.next()
            } catch let error as RaftClientError {
                throw error
            } catch {
                throw RaftClientError(code: .unavailable, message: "\(error)")
            }
        }

    }

    /// See `AsyncSequence`.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: events.makeAsyncIterator()) }
}

/// The events of a typed ``Subscription``: the decoded payload with the index of the command that raised it.
public struct RaftTypedSubscription<Payload: Codable & Sendable>: AsyncSequence, Sendable {
    /// The element type.
    public typealias Element = (index: UInt64, value: Payload)
    /// The untyped subscription.
    public let raw: RaftSubscription

    /// Wraps an untyped subscription.
    public init(_ raw: RaftSubscription) { self.raw = raw }

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: RaftSubscription.AsyncIterator

        /// The next event; a payload that does not decode as `Payload` ends the sequence with `invalidRequest`.
        public mutating func next() async throws(RaftClientError) -> (index: UInt64, value: Payload)? {
            guard let event = try await base.next() else { return nil }
            do {
                return (event.index, try WireDecoder().decode(Payload.self, fromBytes: event.payload))
            } catch {
                throw RaftClientError(code: .invalidRequest, message: "undecodable event payload: \(error)")
            }
        }

    }

    /// See `AsyncSequence`.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: raw.makeAsyncIterator()) }
}

extension RaftClient {
    /// Subscribes to the events of `kind` raised by state machine `stateMachine` whose pattern equals `pattern`
    /// (empty: every event of the kind). The subscription is replicated (it survives leader changes and
    /// snapshots); the leader delivers its events over this client's connection.
    public func subscribe(
        stateMachine: UInt64, kind: UInt64, pattern: [UInt8]
    ) async throws(RaftClientError)
        -> RaftSubscription
    {
        let deadline = ContinuousClock.now + configuration.deadline
        try checkNotClosed()
        var session: UInt64 = 0
        if configuration.useSession {
            // The subscription belongs to the client's session: it ends when the session expires (a client that
            // is gone). Taking a sequence number opens the session if needed; it is complete at once.
            let (id, sequence) = try await nextSequence(deadline: deadline)
            complete(sequence, in: id)
            session = id
        }
        let request = RaftSubscribeRequest(session: session, stateMachine: stateMachine, kind: kind, pattern: pattern)
        let reply = try await run(
            "subscribe", routing: .leader, function: RaftServiceFunction.subscribe, retriesAmbiguous: true,
            deadline: deadline
        ) { (Wire.encode(request), 0) }
        guard let id = try? Wire.decode(UInt64.self, fromBytes: reply.value) else {
            throw RaftClientError(code: .invalidRequest, message: "the subscription id does not decode")
        }
        let (events, continuation) = AsyncThrowingStream.makeStream(of: RaftSubscriptionEvent.self)
        let pump = Task { await self.deliver(subscription: id, to: continuation) }
        continuation.onTermination = { [weak self] _ in
            pump.cancel()
            guard let self else { return }
            // Best effort: a subscription left behind ends with its session.
            Task { try? await self.unsubscribe(id) }
        }
        return RaftSubscription(id: id, events: events)
    }

    /// Removes a subscription.
    public func unsubscribe(_ id: UInt64) async throws(RaftClientError) {
        let deadline = ContinuousClock.now + configuration.deadline
        try checkNotClosed()
        _ = try await run(
            "unsubscribe", routing: .leader, function: RaftServiceFunction.unsubscribe, retriesAmbiguous: true,
            deadline: deadline
        ) { (Wire.encode(id), 0) }
    }

    /// Keeps a watch stream open at the leader, reattaching after failovers from the last event received, until
    /// the subscription ends, an unrecoverable error, or cancellation.
    func deliver(
        subscription id: UInt64, to continuation: AsyncThrowingStream<RaftSubscriptionEvent, any Error>.Continuation
    ) async {
        var afterIndex = id
        var afterOrdinal = UInt32.max
        var failures = 0
        var lastProgress = ContinuousClock.now
        var lastError: RaftClientError?
        func giveUp() {
            continuation.finish(
                throwing: RaftClientError(
                    code: .unavailable,
                    message: "subscription \(id): no leader could be reached within \(configuration.deadline); "
                        + "last error: \(lastError.map { "\($0)" } ?? "none")"))
        }
        while !Task.isCancelled {
            if ContinuousClock.now - lastProgress > configuration.deadline { return giveUp() }
            guard let address = pick(.leader, avoiding: []), let target = RPCAddress(address) else {
                continuation.finish(throwing: RaftClientError(code: .unavailable, message: "no known node"))
                return
            }
            var redirected = false
            do {
                let request = RaftWatchRequest(subscription: id, afterIndex: afterIndex, afterOrdinal: afterOrdinal)
                let stream = try await rpc.stream(
                    target, service: service, function: RaftServiceFunction.watch, payload: Wire.encode(request))
                for try await buffer in stream {
                    let message = try Wire.decode(RaftWatchMessage.self, from: buffer)
                    switch message {
                    case .event(let event):
                        continuation.yield(event)
                        afterIndex = event.index
                        afterOrdinal = event.ordinal
                        failures = 0
                        lastProgress = ContinuousClock.now
                    case .end(let error):
                        lastError = error
                        switch error.code {
                        case .notLeader:
                            if let hint = error.leaderHint.flatMap({ Self.normalize($0.address) }), hint != address {
                                believeLeader(hint)
                                redirected = true
                            } else {
                                forgetLeader(address)
                            }
                        case .noLeader, .busy, .unavailable, .timeout:
                            forgetLeader(address)
                        default:
                            continuation.finish(throwing: error)
                            return
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                forgetLeader(address)
                lastError = (error as? RaftClientError) ?? RaftClientError(code: .unavailable, message: "\(error)")
            }
            if redirected { continue }
            // The client's own jittered exponential backoff, bounded by a deadline measured from the last event.
            do {
                guard
                    try await backOff(
                        &failures, deadline: lastProgress + configuration.deadline, operation: "subscription \(id)",
                        tried: [], lastError: lastError)
                else { return giveUp() }
            } catch {
                break  // cancelled
            }
        }
        continuation.finish()
    }

    /// Subscribes to a typed ``Subscription`` of state machine `stateMachine`; `pattern` `nil` receives every event.
    public func subscribe<Pattern, Payload>(
        _ subscription: Subscription<Pattern, Payload>, stateMachine: UInt64, pattern: Pattern?
    ) async throws(RaftClientError) -> RaftTypedSubscription<Payload> {
        let bytes = pattern.map { subscription.encode(pattern: $0) } ?? []
        return RaftTypedSubscription(
            try await subscribe(stateMachine: stateMachine, kind: subscription.kind, pattern: bytes))
    }
}
