/// How the leader replicates to one follower.
public enum ReplicationState: Sendable, Hashable {
    /// One append at a time until the follower's match point is found.
    case probe
    /// Pipelined appends, bounded by the in-flight window.
    case replicate
    /// A snapshot transfer is in progress.
    case snapshot
}

/// The leader's view of one follower.
struct Progress: Sendable {
    var match: UInt64 = 0
    var next: UInt64
    var state: ReplicationState = .probe
    /// In probe state: an append was sent and not answered (cleared by a heartbeat response).
    var probeSent = false
    /// Heard from since the last check-quorum round.
    var recentActive = false
    /// The highest ReadIndex round this follower acknowledged.
    var readAck: UInt64 = 0
    /// In flight appends: the last index and the byte size of each message.
    var inflight: [(index: UInt64, bytes: Int)] = []
    var inflightHead = 0
    var inflightBytes = 0
    /// Snapshot transfer: the index being sent, the next byte offset, ticks without progress.
    var snapshotIndex: UInt64 = 0
    var snapshotOffset = 0
    var snapshotChunkInFlight = false
    var stalledTicks = 0

    init(next: UInt64) { self.next = next }

    var inflightCount: Int { inflight.count - inflightHead }

    func isPaused(settings: RaftSettings) -> Bool {
        switch state {
        case .probe: return probeSent
        case .replicate:
            return inflightCount >= settings.maxInflightMessages
                || (settings.maxInflightBytes > 0 && inflightBytes >= settings.maxInflightBytes)
        case .snapshot: return true
        }
    }

    mutating func resetInflight() {
        inflight.removeAll(keepingCapacity: true)
        inflightHead = 0
        inflightBytes = 0
    }

    mutating func becomeProbe() {
        if state == .snapshot {
            next = max(match + 1, snapshotIndex + 1)
            snapshotIndex = 0
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        resetInflight()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        resetInflight()
    }

    mutating func becomeSnapshot(index: UInt64) {
        state = .snapshot
        snapshotIndex = index
        snapshotOffset = 0
        snapshotChunkInFlight = false
        stalledTicks = 0
        resetInflight()
    }

    /// Records an acknowledgement up to `index`. Returns `true` when `match` advanced.
    mutating func maybeUpdate(_ index: UInt64) -> Bool {
        var updated = false
        if index > match {
            match = index
            updated = true
            probeSent = false
        }
        next = max(next, index + 1)
        freeInflight(upTo: index)
        return updated
    }

    mutating func freeInflight(upTo index: UInt64) {
        while inflightHead < inflight.count && inflight[inflightHead].index <= index {
            inflightBytes -= inflight[inflightHead].bytes
            inflightHead += 1
        }
        if inflightHead > 64 && inflightHead * 2 > inflight.count {
            inflight.removeFirst(inflightHead)
            inflightHead = 0
        }
    }

    mutating func freeFirstInflight() {
        if inflightHead < inflight.count {
            inflightBytes -= inflight[inflightHead].bytes
            inflightHead += 1
        }
    }

    /// Handles a rejected append of `rejected` with the follower's probe hint. Returns `false` when stale.
    mutating func maybeDecrease(rejected: UInt64, matchHint: UInt64) -> Bool {
        if state == .replicate {
            guard rejected > match else { return false }
            next = match + 1
            return true
        }
        guard next - 1 == rejected else { return false }
        next = max(min(rejected, matchHint + 1), match + 1)
        probeSent = false
        return true
    }
}

/// A read-only view of one follower's progress.
public struct ProgressStatus: Sendable, Hashable {
    /// The highest index known to be replicated on the follower.
    public var match: UInt64
    /// The next index the leader will send.
    public var next: UInt64
    /// The replication state.
    public var state: ReplicationState
    /// Append messages in flight.
    public var inflightMessages: Int
    /// Bytes in flight.
    public var inflightBytes: Int
    /// `true` for a learner.
    public var isLearner: Bool
}

/// A snapshot of a node's state, for monitoring and tests.
public struct RaftStatus: Sendable, Hashable {
    /// This node.
    public var id: NodeID
    /// The role.
    public var role: RaftRole
    /// The current term.
    public var term: UInt64
    /// The vote in the current term.
    public var vote: NodeID
    /// The known leader, or ``noNode``.
    public var leader: NodeID
    /// The commit index.
    public var commit: UInt64
    /// The applied index acknowledged by the shell.
    public var applied: UInt64
    /// The last log index.
    public var lastIndex: UInt64
    /// The configuration in effect (the latest one appended to the log).
    public var configuration: Configuration
    /// The leadership-transfer target, or ``noNode``.
    public var transferee: NodeID
    /// Leader only: the progress of every other member.
    public var progress: [NodeID: ProgressStatus]
}
