import BifrostRPC
import BifrostRaftCore

/// The node side of subscriptions, confined to the node's event loop (a field of the driver).
///
/// Every node records the events it applies in a bounded replay buffer; the leader also delivers them to the
/// watchers attached to it. A position is `(index, ordinal)`: the entry that raised the event and the event's
/// place among that entry's events, the same on every node. A watcher resumes after a position, so a client
/// that moves to a new leader gets every later event once; if some of them were evicted from the buffer (or
/// predate what this node has applied since its last restart or snapshot install) it gets `eventsLost` instead.
struct SubscriptionHub {
    struct Position: Comparable, Hashable {
        var index: UInt64
        var ordinal: UInt32

        static func < (lhs: Position, rhs: Position) -> Bool {
            (lhs.index, lhs.ordinal) < (rhs.index, rhs.ordinal)
        }
    }

    struct Buffered {
        var position: Position
        var stateMachine: UInt64
        var event: RaftRaisedEvent
    }

    /// A consumer of events: a client's watch of a replicated subscription (served by the leader only), or a
    /// node-local watch (``RaftNode/localEvents(_:after:bufferLimit:)``, served by any node).
    struct Watcher {
        /// The replicated subscription watched; `nil` for a local watcher, which outlives leadership changes.
        var subscription: UInt64?
        /// Whether an event of a state machine belongs to this watcher.
        var matches: (_ stateMachine: UInt64, _ event: RaftRaisedEvent) -> Bool
        var after: Position
        /// Hands one event over; `false` means the consumer cannot keep up (the watcher then ends with
        /// `eventsLost`).
        var deliver: (RaftRaisedEventRecord) -> Bool
        /// Ends the consumer's stream with an error.
        var end: (RaftClientError) -> Void
        var finish: () -> Void

        var isLocal: Bool { subscription == nil }

        /// A client's watch of `subscription`, pushed over `writer`.
        static func remote(
            subscription: UInt64, request: RaftSubscribeRequest, after: Position, writer: RPCPushWriter,
            finish: @escaping () -> Void
        ) -> Watcher {
            Watcher(
                subscription: subscription,
                matches: { request.matches(stateMachine: $0, kind: $1.kind, pattern: $1.pattern) },
                after: after,
                deliver: { record in
                    writer.send(
                        RaftWatchMessage.event(
                            RaftSubscriptionEvent(
                                index: record.index, ordinal: record.ordinal, payload: record.event.payload)))
                    return true
                },
                end: { writer.send(RaftWatchMessage.end($0)) },
                finish: finish)
        }
    }

    let capacity: Int
    /// The replay buffer: a ring of at most `capacity` events. Until it is full the events are in order from
    /// index 0; once full, the oldest is at `head`, and recording an event overwrites (and so frees) the oldest
    /// one at once. (An array that dropped its evicted prefix in bulk freed 65,536 events in one go, once every
    /// 65,536 events.)
    private var buffer: [Buffered] = []
    private var head = 0
    /// Events at or before this position are unknown here (before the node's last start or snapshot install).
    private var knownAfter: Position
    /// The newest evicted event per (state machine, kind).
    private var evicted: [SubscriptionKey: Position] = [:]
    private(set) var watchers: [UInt64: Watcher] = [:]

    struct SubscriptionKey: Hashable {
        var stateMachine: UInt64
        var kind: UInt64
    }

    init(capacity: Int, appliedAtStart: UInt64) {
        self.capacity = max(1, capacity)
        self.knownAfter = Position(index: appliedAtStart, ordinal: .max)
    }

    /// The number of events buffered.
    var count: Int { buffer.count }

    /// The buffered events, oldest first.
    var events: some Sequence<Buffered> {
        (0..<buffer.count).lazy.map { [buffer, head] in buffer[(head + $0) % buffer.count] }
    }

    /// Forgets everything buffered: the state jumped to a snapshot at `index`.
    mutating func reset(at index: UInt64) {
        buffer.removeAll()
        head = 0
        evicted.removeAll()
        knownAfter = Position(index: index, ordinal: .max)
    }

    /// Records the events of one applied entry and pushes them to the matching watchers.
    mutating func record(_ records: [RaftRaisedEventRecord]) {
        for record in records {
            let position = Position(index: record.index, ordinal: record.ordinal)
            let buffered = Buffered(position: position, stateMachine: record.stateMachine, event: record.event)
            if !watchers.isEmpty { deliver(buffered) }
            // Its last use: the event moves into the buffer, with no copy kept.
            append(buffered)
        }
    }

    /// Pushes `buffered` to every matching watcher that has not seen it; a watcher that cannot keep up ends.
    private mutating func deliver(_ buffered: Buffered) {
        // Ids first: updating `watchers` while iterating it would copy the dictionary on every write.
        for id in Array(watchers.keys) {
            guard let watcher = watchers[id], watcher.after < buffered.position, matches(watcher, buffered) else {
                continue
            }
            if send(buffered, to: watcher) {
                watchers[id]?.after = buffered.position
            } else {
                detach(id, error: Self.laggingError)
            }
        }
    }

    /// Whether every event after `after` of the given kinds of a state machine is still known here.
    func canResume(stateMachine: UInt64, kinds: some Sequence<UInt64>, after: Position) -> Bool {
        if after < knownAfter { return false }
        for kind in kinds {
            if let newest = evicted[SubscriptionKey(stateMachine: stateMachine, kind: kind)], after < newest {
                return false
            }
        }
        return true
    }

    /// The error a watcher whose consumer fell behind ends with.
    static let laggingError = RaftClientError(
        code: .eventsLost, message: "the consumer fell behind the events; resume from the last position received")

    /// Attaches a watcher: replays the buffered matching events after its position, then keeps it for live ones.
    mutating func attach(_ id: UInt64, _ watcher: Watcher) {
        var watcher = watcher
        for buffered in events {
            if watcher.after < buffered.position && matches(watcher, buffered) {
                guard send(buffered, to: watcher) else {
                    watcher.end(Self.laggingError)
                    watcher.finish()
                    return
                }
                watcher.after = buffered.position
            }
        }
        watchers[id] = watcher
    }

    /// Ends a watcher's stream with `error` (nil: the client went away).
    mutating func detach(_ id: UInt64, error: RaftClientError?) {
        guard let watcher = watchers.removeValue(forKey: id) else { return }
        if let error { watcher.end(error) }
        watcher.finish()
    }

    /// Ends every watcher of `subscription`.
    mutating func end(subscription: UInt64, error: RaftClientError) {
        for (id, watcher) in watchers where watcher.subscription == subscription { detach(id, error: error) }
    }

    /// Ends every watcher of a replicated subscription (leadership lost), and the local ones too when
    /// `includingLocal` (node stopping, group halted).
    mutating func endAll(_ error: RaftClientError, includingLocal: Bool) {
        for (id, watcher) in watchers where includingLocal || !watcher.isLocal { detach(id, error: error) }
    }

    /// Ends every local watcher with `error` (their events are no longer known, e.g. after a snapshot install).
    mutating func endLocal(_ error: RaftClientError) {
        for (id, watcher) in watchers where watcher.isLocal { detach(id, error: error) }
    }

    /// Adds `buffered` as the newest event, evicting the oldest when the buffer is full.
    private mutating func append(_ buffered: consuming Buffered) {
        guard buffer.count >= capacity else {
            buffer.append(buffered)
            return
        }
        // The buffer is in position order, so this is the newest evicted event of its kind. (Its fields are read in
        // place: copying the whole event would copy its content, an existential, once per write.)
        evicted[SubscriptionKey(stateMachine: buffer[head].stateMachine, kind: buffer[head].event.kind)] =
            buffer[head].position
        buffer[head] = buffered
        head = head + 1 == buffer.count ? 0 : head + 1
    }

    private func matches(_ watcher: Watcher, _ buffered: Buffered) -> Bool {
        watcher.matches(buffered.stateMachine, buffered.event)
    }

    private func send(_ buffered: Buffered, to watcher: Watcher) -> Bool {
        watcher.deliver(
            RaftRaisedEventRecord(
                stateMachine: buffered.stateMachine, index: buffered.position.index,
                ordinal: buffered.position.ordinal, event: buffered.event))
    }
}
