/// A message between two Raft nodes. Plain values: the node shell chooses a wire encoding.
public struct RaftMessage: Sendable, Hashable {
    /// The sender.
    public var from: NodeID
    /// The recipient.
    public var to: NodeID
    /// The sender's term (for a pre-vote request: the term the sender would campaign in).
    public var term: UInt64
    /// What the message says.
    public var body: Body

    /// Creates a message.
    public init(from: NodeID, to: NodeID, term: UInt64, body: Body) {
        self.from = from
        self.to = to
        self.term = term
        self.body = body
    }

    /// The message kinds.
    public enum Body: Sendable, Hashable {
        /// AppendEntries (also used as a probe when `entries` is empty).
        case append(AppendRequest)
        /// The answer to ``append(_:)``, ``snapshot(_:)`` completion, or a term-only reply to a stale leader.
        case appendResponse(AppendResponse)
        /// A leader heartbeat; `readSequence` is the ReadIndex round being confirmed (0: none).
        case heartbeat(commit: UInt64, readSequence: UInt64)
        /// The answer to a heartbeat, echoing the read round.
        case heartbeatResponse(readSequence: UInt64)
        /// RequestVote, or a pre-vote request.
        case vote(VoteRequest)
        /// The answer to ``vote(_:)``.
        case voteResponse(granted: Bool, preVote: Bool)
        /// One chunk of an InstallSnapshot transfer.
        case snapshot(SnapshotChunk)
        /// Acknowledges a snapshot chunk; `nextOffset` is the offset the receiver expects next.
        case snapshotResponse(snapshotIndex: UInt64, nextOffset: Int, rejected: Bool)
        /// Tells the leadership-transfer target to campaign now (§3.10 of the thesis).
        case timeoutNow
        /// A follower forwards a ReadIndex request to the leader.
        case readIndex(context: [UInt8])
        /// The leader returns the read index for a forwarded request.
        case readIndexResponse(context: [UInt8], index: UInt64)
    }
}

extension RaftMessage {
    /// Whether the shell must make the batch's snapshot, entries and hard state durable before sending this message.
    ///
    /// Only messages that promise something about durable state wait: a vote request (it carries the sender's own
    /// vote), a granted vote, an accepting append response (it counts towards commit), and a snapshot response. All
    /// others may leave at once, in parallel with the disk write (the Raft thesis, §10.2.1): a leader's appends and
    /// heartbeats (the leader counts its own entries only once they are durable), heartbeat responses, rejections,
    /// pre-votes, read-index traffic and `TimeoutNow`. So a leader in a slow `fsync` still heartbeats on time.
    public var requiresPersistence: Bool {
        switch body {
        case .vote(let request): !request.preVote
        case .voteResponse(let granted, let preVote): granted && !preVote
        case .appendResponse(let response): !response.rejected
        case .snapshotResponse: true
        case .append, .heartbeat, .heartbeatResponse, .snapshot, .timeoutNow, .readIndex, .readIndexResponse: false
        }
    }
}

/// The AppendEntries request.
public struct AppendRequest: Sendable, Hashable {
    /// The index of the entry preceding `entries`.
    public var prevIndex: UInt64
    /// The term of that entry.
    public var prevTerm: UInt64
    /// The entries to append (possibly empty: a probe).
    public var entries: [Entry]
    /// The leader's commit index.
    public var commit: UInt64

    /// Creates a request.
    public init(prevIndex: UInt64, prevTerm: UInt64, entries: [Entry], commit: UInt64) {
        self.prevIndex = prevIndex
        self.prevTerm = prevTerm
        self.entries = entries
        self.commit = commit
    }
}

/// The AppendEntries response.
public struct AppendResponse: Sendable, Hashable {
    /// `true` when the append was rejected because the previous entry did not match.
    public var rejected: Bool
    /// Accepted: the highest index now known to match the leader. Rejected: the rejected `prevIndex`.
    public var index: UInt64
    /// Rejected: the follower's suggested probe point (the largest index whose term is at most `hintTerm`).
    public var hintIndex: UInt64
    /// Rejected: the term of the follower's entry at `hintIndex`.
    public var hintTerm: UInt64

    /// Creates a response.
    public init(rejected: Bool, index: UInt64, hintIndex: UInt64 = 0, hintTerm: UInt64 = 0) {
        self.rejected = rejected
        self.index = index
        self.hintIndex = hintIndex
        self.hintTerm = hintTerm
    }
}

/// The RequestVote (or pre-vote) request.
public struct VoteRequest: Sendable, Hashable {
    /// The index of the candidate's last entry.
    public var lastIndex: UInt64
    /// The term of the candidate's last entry.
    public var lastTerm: UInt64
    /// `true` for a pre-vote: the receiver does not change its term or vote.
    public var preVote: Bool
    /// `true` when the campaign follows a leadership transfer: the receiver ignores its leader lease.
    public var transfer: Bool

    /// Creates a request.
    public init(lastIndex: UInt64, lastTerm: UInt64, preVote: Bool, transfer: Bool) {
        self.lastIndex = lastIndex
        self.lastTerm = lastTerm
        self.preVote = preVote
        self.transfer = transfer
    }
}

/// One chunk of a snapshot transfer. The metadata travels with every chunk so that a receiver can restart cleanly.
public struct SnapshotChunk: Sendable, Hashable {
    /// The snapshot being sent.
    public var metadata: SnapshotMetadata
    /// The byte offset of `data` in the snapshot image.
    public var offset: Int
    /// The chunk bytes (supplied by the leader's ``RaftLogReader/snapshotChunk(offset:maxBytes:)``).
    public var data: [UInt8]
    /// `true` on the last chunk.
    public var done: Bool

    /// Creates a chunk.
    public init(metadata: SnapshotMetadata, offset: Int, data: [UInt8], done: Bool) {
        self.metadata = metadata
        self.offset = offset
        self.data = data
        self.done = done
    }
}

/// A batch of work the shell must carry out, in the order documented in `docs/raft.md`:
/// 1. persist `snapshot`, then `entries` (replacing any stored entries at or after the first one), then
///    `hardState`, and make them durable; messages whose ``RaftMessage/requiresPersistence`` is `false` may be
///    sent before or during this step;
/// 2. send the other `messages`;
/// 3. install `snapshot` into the state machine, then apply `committedEntries` in order;
/// 4. serve each of `readStates` once the state machine has applied its index;
/// 5. call ``RaftCore/advance(_:)`` with this value.
public struct RaftReady: Sendable {
    /// The hard state to persist, when it changed.
    public var hardState: HardState?
    /// Entries to persist (append; an entry replaces any stored entry with the same or a higher index).
    public var entries: [Entry]
    /// A snapshot received from the leader, to persist and install.
    public var snapshot: Snapshot?
    /// Messages to send once the above is durable.
    public var messages: [RaftMessage]
    /// Committed entries to apply, in order.
    public var committedEntries: [Entry]
    /// Reads that are safe to serve once their index is applied.
    public var readStates: [ReadState]
    /// The role and leader, when either changed.
    public var roleChange: (role: RaftRole, leader: NodeID)?

    /// `true` when there is nothing to do.
    public var isEmpty: Bool {
        hardState == nil && entries.isEmpty && snapshot == nil && messages.isEmpty && committedEntries.isEmpty
            && readStates.isEmpty && roleChange == nil
    }
}

/// How read-only requests are confirmed.
public enum ReadOnlyOption: Sendable, Hashable {
    /// ReadIndex: the leader confirms its leadership with a heartbeat round to a quorum (linearizable; no clock).
    case safe
    /// Lease: the leader serves reads from its commit index while its check-quorum lease holds. Assumes bounded
    /// clock drift between nodes (tick rates differ by less than the margin between `electionTick` and the
    /// randomized timeout). Requires ``RaftSettings/checkQuorum``.
    case leaseBased
}

/// Tunables for a ``RaftCore``. Every knob has a documented default.
public struct RaftSettings: Sendable, Hashable {
    /// Ticks without hearing from a leader before a follower campaigns; the actual timeout is randomized in
    /// `[electionTick, 2 * electionTick)`. Default: 10.
    public var electionTick: Int = 10
    /// Ticks between leader heartbeats. Must be less than `electionTick`. Default: 1.
    public var heartbeatTick: Int = 1
    /// The maximum payload bytes of one append message (at least one entry is always sent). Default: 1 MiB.
    public var maxSizePerMessage: Int = 1 << 20
    /// The maximum number of append messages in flight to one follower in the replicate state. Default: 256.
    public var maxInflightMessages: Int = 256
    /// The maximum bytes in flight to one follower (0: unlimited). Default: 0.
    public var maxInflightBytes: Int = 0
    /// The maximum bytes of proposed-but-uncommitted payloads at the leader before proposals are dropped
    /// (0: unlimited). Default: 0.
    public var maxUncommittedBytes: Int = 0
    /// The maximum bytes of one snapshot chunk. Default: 1 MiB.
    public var snapshotChunkBytes: Int = 1 << 20
    /// Campaign with a pre-vote round first, so a partitioned node cannot disrupt the cluster. Default: true.
    public var preVote: Bool = true
    /// A leader steps down when it has not heard from a quorum within an election timeout, and followers
    /// ignore vote requests while they hear from a leader. Default: true.
    public var checkQuorum: Bool = true
    /// How read-only requests are confirmed. Default: ``ReadOnlyOption/safe``.
    public var readOnlyOption: ReadOnlyOption = .safe
    /// Ticks before an unfinished leadership transfer is abandoned (0: `electionTick`). Default: 0.
    public var transferTimeoutTicks: Int = 0
    /// The index the state machine has already applied when the core starts (0: the snapshot index). Default: 0.
    public var applied: UInt64 = 0

    /// Testing only: when set, a follower acknowledges appends without checking the previous entry. The simulation
    /// uses it to prove that its invariant checker detects a broken core.
    public var testingSkipLogMatchingCheck: Bool = false

    /// Creates settings with every default.
    public init() {}
}
