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
        throw RaftClientError(code: .unavailable, message: "subscriptions are being built (issue 6)")
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
