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

    struct Watcher {
        var subscription: UInt64
        var request: RaftSubscribeRequest
        var after: Position
        var writer: RPCPushWriter
        var finish: () -> Void
    }

    let capacity: Int
    private(set) var buffer: [Buffered] = []
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

    var count: Int { buffer.count - head }

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
            if count >= capacity { evictOldest() }
            buffer.append(buffered)
            for (id, watcher) in watchers where watcher.after < position && matches(watcher.request, buffered) {
                send(buffered, to: watcher)
                watchers[id]?.after = position
            }
        }
    }

    /// Whether every event after `after` that matches `request` is still known here.
    func canResume(_ request: RaftSubscribeRequest, after: Position) -> Bool {
        if after < knownAfter { return false }
        if let newest = evicted[SubscriptionKey(stateMachine: request.stateMachine, kind: request.kind)],
            after < newest
        {
            return false
        }
        return true
    }

    /// Attaches a watcher: replays the buffered matching events after its position, then keeps it for live ones.
    mutating func attach(_ id: UInt64, _ watcher: Watcher) {
        var watcher = watcher
        for position in head..<buffer.count {
            let buffered = buffer[position]
            if watcher.after < buffered.position && matches(watcher.request, buffered) {
                send(buffered, to: watcher)
                watcher.after = buffered.position
            }
        }
        watchers[id] = watcher
    }

    /// Ends a watcher's stream with `error` (nil: the client went away).
    mutating func detach(_ id: UInt64, error: RaftClientError?) {
        guard let watcher = watchers.removeValue(forKey: id) else { return }
        if let error { watcher.writer.send(RaftWatchMessage.end(error)) }
        watcher.finish()
    }

    /// Ends every watcher of `subscription`.
    mutating func end(subscription: UInt64, error: RaftClientError) {
        for (id, watcher) in watchers where watcher.subscription == subscription { detach(id, error: error) }
    }

    /// Ends every watcher (leadership lost, node stopping).
    mutating func endAll(_ error: RaftClientError) {
        for id in Array(watchers.keys) { detach(id, error: error) }
    }

    private mutating func evictOldest() {
        let oldest = buffer[head]
        let key = SubscriptionKey(stateMachine: oldest.stateMachine, kind: oldest.event.kind)
        evicted[key] = max(evicted[key] ?? oldest.position, oldest.position)
        head += 1
        if head > 1024 && head * 2 > buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
    }

    private func matches(_ request: RaftSubscribeRequest, _ buffered: Buffered) -> Bool {
        request.matches(stateMachine: buffered.stateMachine, kind: buffered.event.kind, pattern: buffered.event.pattern)
    }

    private func send(_ buffered: Buffered, to watcher: Watcher) {
        watcher.writer.send(
            RaftWatchMessage.event(
                RaftSubscriptionEvent(
                    index: buffered.position.index, ordinal: buffered.position.ordinal,
                    payload: buffered.event.payload)))
    }
}
