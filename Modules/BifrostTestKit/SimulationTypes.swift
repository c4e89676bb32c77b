import BifrostRaftCore

/// What one simulation run injects. Everything random is derived from `seed`.
public struct SimulationConfiguration: Sendable {
    /// The seed every random choice derives from.
    public var seed: UInt64
    /// The number of initial voters (3, 5 or 7 in the campaign).
    public var nodeCount: Int
    /// Ticks of the fault phase.
    public var faultTicks: Int = 300
    /// The bound, in ticks, for the liveness phase (faults stopped) to elect a leader and commit everything pending.
    public var livenessBoundTicks: Int = 400
    /// Percent of messages dropped during the fault phase.
    public var dropPercent: UInt64 = 3
    /// Percent of messages duplicated during the fault phase.
    public var duplicatePercent: UInt64 = 2
    /// Maximum message delay, in ticks, during the fault phase (messages are also shuffled within a tick).
    public var maxDelayTicks: UInt64 = 3
    /// Per-tick chance, in per mille, that a node crashes (losing anything not persisted).
    public var crashPerMille: UInt64 = 8
    /// Per-ready chance, in per mille, that a node crashes in the middle of handling a ready batch.
    public var crashInReadyPerMille: UInt64 = 2
    /// Per-tick chance, in per mille, of a network partition.
    public var partitionPerMille: UInt64 = 10
    /// Per-tick chance, in percent, of a client proposal batch.
    public var proposePercent: UInt64 = 40
    /// Per-tick chance, in per mille, of a membership change step (add learner, promote, remove).
    public var membershipPerMille: UInt64 = 15
    /// Per-tick chance, in per mille, of a leadership transfer.
    public var transferPerMille: UInt64 = 6
    /// Per-tick chance, in percent, of a linearizable read.
    public var readPercent: UInt64 = 30
    /// Compact the log once this many entries are applied past the last snapshot (0: never).
    public var snapshotEvery: UInt64 = 20
    /// The core settings (small snapshot chunks and message sizes exercise chunking and batching).
    public var settings: RaftSettings
    /// Testing only: corrupt the state machine of one node at this tick (the checker must report it).
    public var corruptApplyAtTick: Int? = nil

    /// A configuration whose cluster size and fault mix derive from `seed`.
    public init(seed: UInt64) {
        var rng = RaftRandom(seed: seed ^ 0x5EED_5EED_5EED_5EED)
        self.seed = seed
        self.nodeCount = [3, 5, 7][Int(rng.next(below: 3))]
        var settings = RaftSettings()
        settings.electionTick = 10
        settings.heartbeatTick = 2
        settings.maxSizePerMessage = rng.chance(1, in: 2) ? 1 : 64 + Int(rng.next(below: 512))  // 1: one entry each
        settings.maxInflightMessages = 1 + Int(rng.next(below: 8))
        settings.maxInflightBytes = rng.chance(1, in: 2) ? 0 : 2048
        settings.snapshotChunkBytes = 16 + Int(rng.next(below: 48))
        settings.readOnlyOption = rng.chance(1, in: 4) ? .leaseBased : .safe
        self.settings = settings
        self.dropPercent = rng.next(below: 10)
        self.duplicatePercent = rng.next(below: 6)
        self.maxDelayTicks = 1 + rng.next(below: 6)
        self.crashPerMille = rng.next(below: 12)
        self.crashInReadyPerMille = rng.next(below: 6)
        self.partitionPerMille = rng.next(below: 16)
        self.membershipPerMille = rng.next(below: 25)
        self.transferPerMille = rng.next(below: 10)
        self.snapshotEvery = rng.chance(1, in: 5) ? 0 : 8 + rng.next(below: 30)
    }
}

/// A safety or liveness violation found by the simulation, with what is needed to reproduce it.
public struct SimulationFailure: Error, Sendable, CustomStringConvertible {
    /// The seed that reproduces the run (`BIFROST_SIM_SEED=<seed>`).
    public var seed: UInt64
    /// The tick at which the violation was detected.
    public var tick: Int
    /// What was violated.
    public var reason: String
    /// The last events before the violation, oldest first.
    public var trace: [String]

    /// A report with the seed, the reason and the event trace.
    public var description: String {
        var text = "simulation seed \(seed) failed at tick \(tick): \(reason)\n"
        text += "reproduce with: BIFROST_SIM_SEED=\(seed) swift test --filter Simulation\n"
        text += "last \(trace.count) events:\n"
        for line in trace { text += "  \(line)\n" }
        return text
    }
}

/// Figures from one simulation run.
public struct SimulationReport: Sendable, Hashable {
    /// The seed.
    public var seed: UInt64
    /// The cluster size.
    public var nodeCount: Int
    /// Ticks run (fault phase plus liveness phase).
    public var ticks: Int
    /// The highest commit index reached.
    public var commitIndex: UInt64
    /// Client proposals acknowledged (applied at the leader that proposed them).
    public var acknowledged: Int
    /// Leaders elected.
    public var elections: Int
    /// Crashes injected.
    public var crashes: Int
    /// Messages delivered.
    public var delivered: Int
    /// Snapshots installed from a leader.
    public var snapshotsInstalled: Int
    /// Membership changes appended.
    public var membershipChanges: Int
    /// Leadership transfers started.
    public var transfers: Int
    /// Reads served (and checked).
    public var reads: Int
    /// Ticks the liveness phase needed.
    public var livenessTicks: Int
}
