import BifrostRaftCore

/// Settings of a ``RaftNode``. Every knob has a documented default.
public struct RaftNodeConfiguration: Sendable {
    /// The Raft group; its RPC service id is ``RaftServiceID/forGroup(_:)``. Default: 0.
    public var group: UInt64 = 0
    /// This node: its id (unique in the group, never 0) and the RPC address peers and clients reach it at.
    public var node: RaftPeer
    /// The settings of the Raft core (election and heartbeat ticks, flow control, pre-vote, check-quorum).
    /// Default: ``RaftSettings``'s defaults (an election timeout of 10 to 20 ticks, a heartbeat every tick).
    public var raft: RaftSettings = RaftSettings()
    /// How time reaches the core. Default: a tick every 50 ms (elections after 0.5 to 1 s of silence).
    public var ticks: Ticks = .every(.milliseconds(50))
    /// Take a snapshot once this many entries were applied since the last one. Default: 100,000 (etcd's
    /// `--snapshot-count`). An entry may carry many client commands (``maxCommandsPerEntry``) and counts once. A
    /// snapshot copies and encodes every state machine, so at 20,000 writes/s a smaller value costs throughput and
    /// tail latency (`docs/benchmarks.md`); ``snapshotLogBytes`` still bounds the log.
    public var snapshotEntries: UInt64 = 100_000
    /// Take a snapshot once the log since the last one holds this many payload bytes. Default: 64 MiB.
    public var snapshotLogBytes: Int = 64 << 20
    /// The niceness of the node's snapshot thread (Linux: `setpriority` on that thread only; elsewhere ignored),
    /// from 0 (as the rest of the node) to 19. Default: 10. Encoding a snapshot is background work that takes tens
    /// of milliseconds of CPU for a state of 100,000 keys; at a lower priority it runs when a core is free instead
    /// of taking one from the event loop that answers clients (`docs/benchmarks.md`, "Snapshots and the tail").
    public var snapshotThreadNice: Int32 = 10
    /// The newest log entries a node keeps in memory, in payload bytes: what it is about to apply and what
    /// up-to-date followers are about to receive. Older entries are read back from the log on disk (for a follower
    /// that fell behind, or a replay after a restart). Default: 8 MiB.
    public var logCacheBytes: Int = 8 << 20
    /// Sync every log write to disk before acknowledging it. Turn off only for tests and benchmarks that say so.
    /// Default: true.
    public var syncWrites: Bool = true
    /// The most proposals taken into one batch (one log append, one synced write). Default: 4,096.
    public var maxProposalBatch: Int = 4096
    /// How long a leader that answered a batch waits for those clients' next commands before it proposes again
    /// (``ProposalWindow``): clients that send again at once then share every round instead of taking turns.
    /// Default: ``ProposalWindow/Settings``'s (at most 1 ms, off for traffic that does not come back at once);
    /// ``ProposalWindow/Settings/off`` proposes every command as soon as it arrives.
    public var proposalWindow: ProposalWindow.Settings = ProposalWindow.Settings()
    /// The most client commands a leader packs into one log entry (``RaftLogCommand/Body/batch(_:)``): commands
    /// proposed together share one entry, so one log record, one replicated entry and one decode on every node
    /// serve them all. They still apply one by one, in order, each exactly once; they share the entry's index
    /// (``RaftApplyContext/index``). 1 gives every command an entry of its own, which nodes older than batch
    /// entries can read: use it while such a node is still in the group (a rolling upgrade). Default: 256.
    public var maxCommandsPerEntry: Int = 256
    /// An entry stops taking commands once their arguments reach this many bytes (a larger command still gets an
    /// entry of its own). Default: 256 KiB.
    public var maxCommandBytesPerEntry: Int = 256 << 10
    /// The most Raft-message bytes in one RPC to a peer. Default: 4 MiB.
    public var maxPeerBatchBytes: Int = 4 << 20
    /// A linearizable read not answered within this many ticks fails with `timeout` (the client retries).
    /// Default: 40 (2 s at the default tick).
    public var readTimeoutTicks: Int = 40
    /// Subscription events every node keeps for replay, so that a subscriber that moves to a new leader misses
    /// nothing. A subscriber further behind gets `eventsLost`. Default: 65,536.
    public var subscriptionReplayEvents: Int = 65_536
    /// The most memory the replay buffer's events take: the buffer keeps events as bytes in one ring of memory,
    /// which grows as needed up to this size; when the newest events take it all, the oldest make room (fewer than
    /// ``subscriptionReplayEvents`` are then kept). Event contents without a compact form
    /// (``RaftEventContent/compactSize``) are kept as objects outside it. Default: 64 MiB.
    public var subscriptionReplayBytes: Int = 64 << 20
    /// Sessions and result caching of the master state machine.
    public var sessions: MasterStateMachineSettings = MasterStateMachineSettings()

    /// How the node advances the core's logical clock.
    public enum Ticks: Sendable, Hashable {
        /// A tick at this interval, from the node's event loop.
        case every(Duration)
        /// Only when ``RaftNode/tick()`` is called (tests).
        case manual
    }

    /// Creates a configuration for `node`.
    public init(node: RaftPeer) {
        self.node = node
    }
}

/// How a node joins its group the first time it starts. A node that finds state on disk restarts from it and
/// ignores this (it never bootstraps twice, so a restart cannot split the cluster).
public enum RaftNodeStart: Sendable, Hashable {
    /// Founds a new cluster whose voters are `peers` (this node among them). Every founding member must be
    /// started with the same list.
    case bootstrap([RaftPeer])
    /// Joins an existing cluster by asking any of the `seeds` addresses: the leader adds this node as a learner
    /// and promotes it to voter once it has caught up.
    case join(seeds: [String])
    /// Starts with an empty configuration and waits to be added by an operator (for learners added with
    /// ``RaftMembershipRequest/addLearner(_:)``).
    case standby
}
