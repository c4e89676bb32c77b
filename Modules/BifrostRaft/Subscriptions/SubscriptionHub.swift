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

    /// The replay buffer: the newest events, at most ``RaftNodeConfiguration/subscriptionReplayEvents`` of them,
    /// their contents as bytes in at most ``RaftNodeConfiguration/subscriptionReplayBytes`` of memory.
    private var ring: EventRing
    /// Events at or before this position are unknown here (before the node's last start or snapshot install).
    private var knownAfter: Position
    private(set) var watchers: [UInt64: Watcher] = [:]

    init(capacity: Int, maxBytes: Int = 64 << 20, appliedAtStart: UInt64) {
        self.ring = EventRing(capacity: capacity, maxBytes: maxBytes)
        self.knownAfter = Position(index: appliedAtStart, ordinal: .max)
    }

    /// The number of events buffered.
    var count: Int { ring.count }

    /// The bytes the replay buffer's ring holds now.
    var byteCapacity: Int { ring.byteCapacity }

    /// The number of buffered events kept as objects rather than bytes.
    var objectCount: Int { ring.objectCount }

    /// The buffered events, oldest first (rebuilt from their bytes).
    var events: [Buffered] {
        var events: [Buffered] = []
        ring.forEach { slot, event in
            if let event {
                events.append(Buffered(position: slot.position, stateMachine: slot.stateMachine, event: event))
            }
            return true
        }
        return events
    }

    /// Forgets everything buffered: the state jumped to a snapshot at `index`.
    mutating func reset(at index: UInt64) {
        ring.removeAll()
        knownAfter = Position(index: index, ordinal: .max)
    }

    /// Records the events of one applied entry and pushes them to the matching watchers.
    mutating func record(_ records: [RaftRaisedEventRecord]) {
        for record in records {
            let position = Position(index: record.index, ordinal: record.ordinal)
            if !watchers.isEmpty {
                deliver(Buffered(position: position, stateMachine: record.stateMachine, event: record.event))
            }
            ring.append(record.event, stateMachine: record.stateMachine, at: position)
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
            if let newest = ring.newestEvicted(stateMachine: stateMachine, kind: kind), after < newest {
                return false
            }
        }
        return true
    }

    /// The error a watcher whose consumer fell behind ends with.
    static let laggingError = RaftClientError(
        code: .eventsLost, message: "the consumer fell behind the events; resume from the last position received")

    /// The error a replaying watcher ends with when a buffered event's content cannot be read back from its compact
    /// form (``RaftEventContent/readCompact(from:)`` returned `nil`).
    static let unreadableError = RaftClientError(
        code: .eventsLost, message: "a buffered event could not be read back; resume from the last position received")

    /// Attaches a watcher: replays the buffered matching events after its position, then keeps it for live ones.
    mutating func attach(_ id: UInt64, _ watcher: Watcher) {
        var watcher = watcher
        var failure: RaftClientError?
        ring.forEach { slot, event in
            guard watcher.after < slot.position else { return true }
            guard let event else {
                // Whether it matched is unknown: the watcher learns it may have missed one, rather than skip it.
                failure = Self.unreadableError
                return false
            }
            let buffered = Buffered(position: slot.position, stateMachine: slot.stateMachine, event: event)
            guard matches(watcher, buffered) else { return true }
            guard send(buffered, to: watcher) else {
                failure = Self.laggingError
                return false
            }
            watcher.after = slot.position
            return true
        }
        if let failure {
            watcher.end(failure)
            watcher.finish()
            return
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
