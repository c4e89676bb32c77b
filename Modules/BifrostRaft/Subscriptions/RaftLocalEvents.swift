import BifrostWire
import NIOCore
import Synchronization

/// A position in the stream of events a group's state machines raise: the log index of the entry that raised
/// the event and the event's place among that entry's events. Positions are the same on every node.
public struct RaftEventPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The log index of the entry.
    public var index: UInt64
    /// The event's place among the entry's events (`UInt32.max`: after all of them).
    public var ordinal: UInt32

    /// Creates a position.
    public init(index: UInt64, ordinal: UInt32 = .max) {
        self.index = index
        self.ordinal = ordinal
    }

    /// Orders by index, then ordinal.
    public static func < (lhs: RaftEventPosition, rhs: RaftEventPosition) -> Bool {
        (lhs.index, lhs.ordinal) < (rhs.index, rhs.ordinal)
    }

    /// `index.ordinal`, or just `index` for the position after all of an entry's events.
    public var description: String { ordinal == .max ? "\(index)" : "\(index).\(ordinal)" }

    /// Parses ``description``: `index` (after every event of that entry) or `index.ordinal`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            guard let index = UInt64(parts[0]) else { return nil }
            self.init(index: index)
        case 2:
            guard let index = UInt64(parts[0]), let ordinal = UInt32(parts[1]) else { return nil }
            self.init(index: index, ordinal: ordinal)
        default:
            return nil
        }
    }
}

/// Which events a node-local watch (``RaftNode/localEvents(_:after:bufferLimit:)``) receives: those of one state
/// machine, of some kinds, whose pattern passes a test.
public struct RaftEventFilter: Sendable {
    /// The state machine that raises the events.
    public var stateMachine: UInt64
    /// The subscription kinds (``Subscription/kind``).
    public var kinds: Set<UInt64>
    /// A test of the event's encoded pattern; it runs on the node's event loop, so keep it cheap.
    public var pattern: @Sendable ([UInt8]) -> Bool

    /// Creates a filter.
    public init(
        stateMachine: UInt64, kinds: Set<UInt64>, pattern: @escaping @Sendable ([UInt8]) -> Bool = { _ in true }
    ) {
        self.stateMachine = stateMachine
        self.kinds = kinds
        self.pattern = pattern
    }

    /// The events of `subscription` raised by `stateMachine` whose decoded pattern passes `test` (every event when
    /// `test` is nil). A pattern that does not decode fails the test.
    public init<Pattern, Payload>(
        _ subscription: Subscription<Pattern, Payload>, stateMachine: UInt64,
        where test: (@Sendable (Pattern) -> Bool)? = nil
    ) {
        self.stateMachine = stateMachine
        self.kinds = [subscription.kind]
        if let test {
            self.pattern = { bytes in
                guard let pattern = try? WireDecoder().decode(Pattern.self, fromBytes: bytes) else { return false }
                return test(pattern)
            }
        } else {
            self.pattern = { _ in true }
        }
    }
}

extension RaftNode {
    /// Streams the events this node's state machines raise as it applies entries, as this node applies them:
    /// on any node (leader, follower or learner), with no subscription registered in the log.
    ///
    /// The stream starts after `after` (nil: after everything applied so far). Events still in the node's replay
    /// buffer (``RaftNodeConfiguration/subscriptionReplayEvents``) are replayed first, so a consumer that
    /// reconnects resumes where it stopped. The stream ends with a ``RaftClientError``:
    /// - `eventsLost` when `after` is older than the buffer reaches, when the consumer falls more than
    ///   `bufferLimit` events behind, or when the node installs a snapshot (events before it are unknown here);
    /// - `unavailable` when the node stops.
    ///
    /// Cancelling the consuming task (or dropping the stream) detaches the watch.
    public func localEvents(
        _ filter: RaftEventFilter, after: RaftEventPosition? = nil, bufferLimit: Int = 10_000
    ) -> AsyncThrowingStream<RaftRaisedEventRecord, any Error> {
        let (stream, continuation) = AsyncThrowingStream<RaftRaisedEventRecord, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(max(1, bufferLimit)))
        let id = nextWatch.add(1, ordering: .relaxed).newValue
        let driver = self.driver
        let loop = self.loop
        continuation.onTermination = { _ in loop.execute { driver.value.hub.detach(id, error: nil) } }
        loop.execute {
            driver.value.watchLocally(
                filter, after: after, id: id,
                deliver: { record in
                    if case .dropped = continuation.yield(record) { return false }
                    return true
                },
                end: { continuation.finish(throwing: $0) })
        }
        return stream
    }
}
