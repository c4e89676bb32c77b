/// Settings of a ``RaftClient``. Every knob has a documented default.
public struct RaftClientConfiguration: Sendable {
    /// The Raft group the client talks to (its RPC service is ``RaftServiceID/forGroup(_:)``). Default: 0.
    public var group: UInt64 = 0
    /// How long one RPC attempt may take before the client gives up on that node and tries again (on another
    /// node, after a backoff). Capped by what is left of ``deadline``. Default: 2 s.
    public var attemptTimeout: Duration = .seconds(2)
    /// How long a whole operation may take, across every retry and failover. When it passes, the operation
    /// fails with ``RaftClientError/Code/timeout`` (or ``RaftClientError/Code/unavailable`` when no node could
    /// be reached at all), with a message naming the nodes tried and the last error. Default: 15 s.
    public var deadline: Duration = .seconds(15)
    /// The wait before the first retry that needs one (no leader, a busy leader, every known node unreachable).
    /// Each further wait doubles, up to ``maxBackoff``. Default: 10 ms.
    public var initialBackoff: Duration = .milliseconds(10)
    /// The longest wait between attempts. Every wait is jittered (a random value between half and all of the
    /// exponential step), so that many clients do not retry in lock step. Default: 500 ms.
    public var maxBackoff: Duration = .milliseconds(500)
    /// Whether commands run in a client session, which makes them exactly-once: the cluster applies each command
    /// once however often the client retries it. Without a session a command whose outcome is unknown (an
    /// attempt timed out) is not retried, since a retry could apply it twice. Default: true.
    public var useSession: Bool = true
    /// Whether `linearizable` queries may go to any node instead of the leader. A follower serves them with a
    /// ReadIndex round through the leader (Raft thesis §6.4): as linearizable as the leader's, and the state
    /// machine work and the reply come off the leader. `lease` queries still go to the leader. Default: false.
    public var linearizableReadsOnFollowers: Bool = false
    /// The node that `sequential` and `stale` queries go to first, when it answers (`host:port`); other nodes are
    /// tried only when it fails. An HTTP gateway in a node's process sets its own node here, so that its reads
    /// are served where they were asked. Default: nil (spread such reads over the known nodes).
    public var preferredNode: String?

    /// Creates the default configuration.
    public init() {}
}
