import BifrostRaftCore

/// A deterministic simulation of a Raft cluster: N ``RaftCore``s over a simulated network that drops, delays,
/// reorders and duplicates messages and partitions; nodes crash (losing whatever was not persisted) and restart
/// from their persisted state; membership churns, logs are compacted, leadership is transferred, clients propose
/// and read throughout. Safety invariants are checked after every step; a liveness phase follows the faults.
///
/// Everything derives from ``SimulationConfiguration/seed``: rerunning a seed reproduces a run bit for bit.
public struct Simulation {
    typealias Core = RaftCore<MemoryRaftStorage>

    struct Node {
        let id: NodeID
        var core: Core?
        /// The durable state while the node is down (while it is up, `core.storage` is the disk).
        var disk: MemoryRaftStorage
        var smApplied: UInt64 = 0
        var smHash: UInt64 = 0
        var lastTerm: UInt64 = 0
        var lastCommit: UInt64 = 0
        var lastApplied: UInt64 = 0
        var persisted = HardState()
        var restartAt = 0
        var wasLeaderInTerm: UInt64 = 0
        var pendingReads: [UInt64: UInt64] = [:]  // read id -> minimum index required
    }

    struct InFlight {
        var deliverAt: Int
        var message: RaftMessage
    }

    struct EntryKey: Hashable {
        var index: UInt64
        var term: UInt64
    }

    enum Event {
        case tick(Int)
        case deliver(RaftMessage)
        case drop(RaftMessage)
        case crash(NodeID, String)
        case restart(NodeID, HardState, UInt64)
        case partition([NodeID], [NodeID])
        case heal
        case propose(NodeID, ClosedRange<UInt64>, UInt64)
        case membership(NodeID, MembershipChange, UInt64)
        case transfer(NodeID, NodeID)
        case snapshot(NodeID, UInt64)
        case leader(NodeID, UInt64)
        case apply(NodeID, UInt64, UInt64)
        case note(String)

        var text: String {
            switch self {
            case .tick(let t): return "tick \(t)"
            case .deliver(let m): return "deliver \(m.from)->\(m.to) t\(m.term) \(Simulation.describe(m.body))"
            case .drop(let m): return "drop \(m.from)->\(m.to) t\(m.term) \(Simulation.describe(m.body))"
            case .crash(let n, let point): return "crash \(n) (\(point))"
            case .restart(let n, let hs, let last):
                return "restart \(n) term=\(hs.term) vote=\(hs.vote) commit=\(hs.commit) last=\(last)"
            case .partition(let a, let b): return "partition \(a) | \(b)"
            case .heal: return "heal network"
            case .propose(let n, let r, let t): return "propose at \(n): \(r) term \(t)"
            case .membership(let n, let c, let i): return "membership at \(n): \(c) index \(i)"
            case .transfer(let n, let to): return "transfer leadership \(n) -> \(to)"
            case .snapshot(let n, let i): return "snapshot+compact at \(n) index \(i)"
            case .leader(let n, let t): return "leader \(n) term \(t)"
            case .apply(let n, let first, let last): return "apply at \(n): \(first)...\(last)"
            case .note(let s): return s
            }
        }
    }

    /// The configuration of this run.
    public let configuration: SimulationConfiguration
    var rng: RaftRandom
    var nodes: [NodeID: Node] = [:]
    var nodeIDs: [NodeID] = []
    var spareIDs: [NodeID] = []
    var network: [InFlight] = []
    var partition: Set<NodeID>? = nil
    var partitionHealAt = 0
    var partitionOneWay = false
    var now = 0
    var faultsActive = true
    var trace: [Event] = []
    var traceHead = 0
    let traceLimit = 60

    // Global records for the invariants.
    var leaderOfTerm: [UInt64: NodeID] = [:]
    var entryRecord: [EntryKey: (hash: UInt64, prevTerm: UInt64)] = [:]
    var appliedRecord: [UInt64: (term: UInt64, hash: UInt64, smHash: UInt64)] = [:]
    var maxCommitted: UInt64 = 0
    var nextProposalID: UInt64 = 1
    var committedTerm: [UInt64: UInt64] = [:]
    var unacknowledged: [UInt64: [UInt8]] = [:]
    var acknowledgedMaxIndex: UInt64 = 0
    var nextReadID: UInt64 = 1
    var corrupted = false
    var report: SimulationReport

    /// Creates a simulation.
    public init(configuration: SimulationConfiguration) {
        self.configuration = configuration
        self.rng = RaftRandom(seed: configuration.seed)
        self.report = SimulationReport(
            seed: configuration.seed,
            nodeCount: configuration.nodeCount,
            ticks: 0,
            commitIndex: 0,
            acknowledged: 0,
            elections: 0,
            crashes: 0,
            delivered: 0,
            snapshotsInstalled: 0,
            membershipChanges: 0,
            transfers: 0,
            reads: 0,
            livenessTicks: 0
        )
        let ids = (1...UInt64(configuration.nodeCount)).map { NodeID($0) }
        nodeIDs = ids
        spareIDs = (1...4).map { UInt64(configuration.nodeCount) + $0 }
        let bootstrap = Configuration(voters: Set(ids))
        for id in ids {
            nodes[id] = Node(id: id, core: nil, disk: MemoryRaftStorage(configuration: bootstrap))
        }
    }

    /// Runs a seed with its derived configuration.
    public static func run(seed: UInt64) throws(SimulationFailure) -> SimulationReport {
        var simulation = Simulation(configuration: SimulationConfiguration(seed: seed))
        return try simulation.run()
    }

    /// Runs the fault phase, then the liveness phase. Throws on the first violation.
    public mutating func run() throws(SimulationFailure) -> SimulationReport {
        for id in nodeIDs { try start(id) }
        while now < configuration.faultTicks {
            try step()
        }
        try livenessPhase()
        report.ticks = now
        report.commitIndex = maxCommitted
        return report
    }

    // MARK: - Trace and failures

    mutating func record(_ event: Event) {
        if trace.count < traceLimit {
            trace.append(event)
        } else {
            trace[traceHead] = event
            traceHead = (traceHead + 1) % traceLimit
        }
    }

    func failure(_ reason: String) -> SimulationFailure {
        var lines: [String] = []
        for offset in 0..<trace.count {
            lines.append(trace[(traceHead + offset) % trace.count].text)
        }
        return SimulationFailure(seed: configuration.seed, tick: now, reason: reason, trace: lines)
    }

    static func describe(_ body: RaftMessage.Body) -> String {
        switch body {
        case .append(let r):
            let range = r.entries.isEmpty ? "[]" : "[\(r.entries[0].index)...\(r.entries[r.entries.count - 1].index)]"
            return "append prev=\(r.prevIndex)/\(r.prevTerm) \(range) commit=\(r.commit)"
        case .appendResponse(let r):
            return r.rejected
                ? "appendResponse reject \(r.index) hint=\(r.hintIndex)/\(r.hintTerm)" : "appendResponse ok \(r.index)"
        case .heartbeat(let c, let s): return "heartbeat commit=\(c) read=\(s)"
        case .heartbeatResponse(let s): return "heartbeatResponse read=\(s)"
        case .vote(let v):
            return "\(v.preVote ? "preVote" : "vote") last=\(v.lastIndex)/\(v.lastTerm) transfer=\(v.transfer)"
        case .voteResponse(let g, let p): return "\(p ? "preVote" : "vote")Response granted=\(g)"
        case .snapshot(let c):
            return "snapshot \(c.metadata.index)/\(c.metadata.term) offset=\(c.offset) done=\(c.done)"
        case .snapshotResponse(let i, let o, let r): return "snapshotResponse \(i) next=\(o) rejected=\(r)"
        case .timeoutNow: return "timeoutNow"
        case .readIndex: return "readIndex"
        case .readIndexResponse(_, let i): return "readIndexResponse \(i)"
        }
    }

    // MARK: - Node lifecycle

    mutating func start(_ id: NodeID) throws(SimulationFailure) {
        guard var node = nodes[id] else { return }
        var settings = configuration.settings
        settings.applied = 0
        let core: Core
        do {
            core = try Core(id: id, storage: node.disk, settings: settings, randomSeed: rng.next())
        } catch {
            throw failure("node \(id) failed to start: \(error)")
        }
        // The state machine restarts from the persisted snapshot and replays the log from there.
        let meta = node.disk.snapshotMetadata
        node.smApplied = meta.index
        node.smHash = Simulation.decodeSnapshot(node.disk.snapshotData) ?? 0
        if meta.index > 0, let expected = appliedRecord[meta.index], expected.smHash != node.smHash {
            throw failure("node \(id) restarted from a snapshot at \(meta.index) whose state differs")
        }
        guard core.term == node.disk.hardState.term, core.term >= node.persisted.term else {
            throw failure("node \(id) restarted with term \(core.term), persisted \(node.persisted.term)")
        }
        node.lastTerm = core.term
        node.lastCommit = core.commitIndex
        node.lastApplied = core.appliedIndex
        node.core = core
        record(.restart(id, node.disk.hardState, node.disk.lastIndex))
        nodes[id] = node
    }

    mutating func crash(_ id: NodeID, point: String) {
        guard var node = nodes[id], let core = node.core else { return }
        node.disk = core.storage
        node.core = nil
        node.pendingReads = [:]
        node.restartAt = now + 3 + Int(rng.next(below: 40))
        nodes[id] = node
        report.crashes += 1
        record(.crash(id, point))
    }

    // MARK: - Main loop

    mutating func step() throws(SimulationFailure) {
        now += 1
        record(.tick(now))
        if faultsActive { try injectFaults() }
        for id in nodeIDs where nodes[id]?.core != nil {
            nodes[id]!.core!.tick()
            try processReady(id)
        }
        try deliverDue()
    }

    mutating func injectFaults() throws(SimulationFailure) {
        for id in nodeIDs {
            guard let node = nodes[id] else { continue }
            if node.core == nil {
                if now >= node.restartAt { try start(id) }
            } else if rng.chance(configuration.crashPerMille, in: 1000) {
                crash(id, point: "between steps")
            }
        }
        if let _ = partition {
            if now >= partitionHealAt {
                partition = nil
                record(.heal)
            }
        } else if rng.chance(configuration.partitionPerMille, in: 1000) {
            var side = Set<NodeID>()
            if rng.chance(1, in: 3), let leaderID = currentLeader() {
                side = [leaderID]  // cut the leader off
            } else {
                for id in nodeIDs where rng.chance(1, in: 2) { side.insert(id) }
            }
            partition = side
            partitionOneWay = rng.chance(1, in: 4)
            partitionHealAt = now + 5 + Int(rng.next(below: 60))
            record(.partition(side.sorted(), nodeIDs.filter { !side.contains($0) }))
            if partitionOneWay { record(.note("partition is one-way: only messages leaving the first side are lost")) }
        }
        if rng.chance(configuration.proposePercent, in: 100) { try proposeBatch() }
        if rng.chance(configuration.readPercent, in: 100) { try issueRead() }
        if rng.chance(configuration.membershipPerMille, in: 1000) { try changeMembership() }
        if rng.chance(configuration.transferPerMille, in: 1000) { try transferLeadership() }
    }

    func currentLeader() -> NodeID? {
        var best: (NodeID, UInt64)?
        for id in nodeIDs {
            guard let core = nodes[id]?.core, core.role == .leader else { continue }
            if best == nil || core.term > best!.1 { best = (id, core.term) }
        }
        return best?.0
    }

}
