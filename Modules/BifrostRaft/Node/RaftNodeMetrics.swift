import BifrostRaftCore
import CoreMetrics
import Metrics

/// The metrics a node reports through swift-metrics, each with dimensions `group` and `node`.
struct RaftNodeMetrics {
    /// `bifrost_raft_proposals_total`: commands proposed on this node as leader.
    let proposals: Counter
    /// `bifrost_raft_leader_changes_total`: times this node became leader.
    let leaderChanges: Counter
    /// `bifrost_raft_snapshots_taken_total` and `bifrost_raft_snapshots_installed_total`.
    let snapshotsTaken: Counter
    let snapshotsInstalled: Counter
    /// `bifrost_raft_term`, `bifrost_raft_is_leader`, `bifrost_raft_commit_index`, `bifrost_raft_applied_index`.
    let term: Gauge
    let isLeader: Gauge
    let commit: Gauge
    let applied: Gauge
    /// `bifrost_raft_last_index`, `bifrost_raft_snapshot_index`, and `bifrost_raft_log_entries` (the entries kept
    /// in the log after the last snapshot: the log's size).
    let last: Gauge
    let snapshotIndex: Gauge
    let logEntries: Gauge
    /// `bifrost_raft_write_seconds`: the duration of one synced log write (a group commit).
    let writeLatency: Metrics.Timer
    /// `bifrost_raft_write_batch_stages`: ready batches merged into one synced write.
    let writeBatch: Recorder
    /// `bifrost_raft_proposal_window_seconds`: how long a leader's proposal window stayed open
    /// (``ProposalWindow``), and `bifrost_raft_proposal_windows_total` with `closed` = `target` or `deadline`.
    let windowOpen: Metrics.Timer
    let windowsOnTarget: Counter
    let windowsOnDeadline: Counter

    init(group: UInt64, node: NodeID) {
        let dimensions = [("group", "\(group)"), ("node", "\(node)")]
        proposals = Counter(label: "bifrost_raft_proposals_total", dimensions: dimensions)
        leaderChanges = Counter(label: "bifrost_raft_leader_changes_total", dimensions: dimensions)
        snapshotsTaken = Counter(label: "bifrost_raft_snapshots_taken_total", dimensions: dimensions)
        snapshotsInstalled = Counter(label: "bifrost_raft_snapshots_installed_total", dimensions: dimensions)
        term = Gauge(label: "bifrost_raft_term", dimensions: dimensions)
        isLeader = Gauge(label: "bifrost_raft_is_leader", dimensions: dimensions)
        commit = Gauge(label: "bifrost_raft_commit_index", dimensions: dimensions)
        applied = Gauge(label: "bifrost_raft_applied_index", dimensions: dimensions)
        last = Gauge(label: "bifrost_raft_last_index", dimensions: dimensions)
        snapshotIndex = Gauge(label: "bifrost_raft_snapshot_index", dimensions: dimensions)
        logEntries = Gauge(label: "bifrost_raft_log_entries", dimensions: dimensions)
        writeLatency = Metrics.Timer(label: "bifrost_raft_write_seconds", dimensions: dimensions)
        writeBatch = Recorder(label: "bifrost_raft_write_batch_stages", dimensions: dimensions)
        windowOpen = Metrics.Timer(label: "bifrost_raft_proposal_window_seconds", dimensions: dimensions)
        windowsOnTarget = Counter(
            label: "bifrost_raft_proposal_windows_total", dimensions: dimensions + [("closed", "target")])
        windowsOnDeadline = Counter(
            label: "bifrost_raft_proposal_windows_total", dimensions: dimensions + [("closed", "deadline")])
    }
}
