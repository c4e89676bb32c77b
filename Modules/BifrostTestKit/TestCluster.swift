import BifrostRaftCore

/// A small, fully controlled cluster for scenario tests: messages are queued in ``outbox`` and delivered only when a
/// test asks, so a test can inspect, drop, duplicate or reorder them. The shell follows the ordering contract: persist,
/// then send, then apply, then advance.
public struct RaftTestCluster {
    /// The core type used by the cluster.
    public typealias Core = RaftCore<MemoryRaftStorage>

    /// The running cores (a crashed node is absent).
    public var cores: [NodeID: Core] = [:]
    /// The disks of crashed nodes.
    public var disks: [NodeID: MemoryRaftStorage] = [:]
    /// Messages sent and not yet delivered, in send order.
    public var outbox: [RaftMessage] = []
    /// Nodes cut off from everyone (their messages, both ways, are dropped on delivery).
    public var isolated: Set<NodeID> = []
    /// Entries applied by each node, in order.
    public var applied: [NodeID: [Entry]] = [:]
    /// Snapshots installed by each node.
    public var installedSnapshots: [NodeID: [SnapshotMetadata]] = [:]
    /// Read states returned to each node.
    public var readStates: [NodeID: [ReadState]] = [:]
    /// Every message delivered so far (for assertions about what was sent).
    public var delivered: [RaftMessage] = []
    /// The settings new nodes start with.
    public var settings: RaftSettings
    var seed: UInt64

    /// Creates a cluster whose voters are `1...voters`.
    public init(voters: Int, settings: RaftSettings = RaftSettings(), seed: UInt64 = 1) {
        self.settings = settings
        self.seed = seed
        let configuration = Configuration(voters: Set((1...UInt64(voters)).map { NodeID($0) }))
        for id in configuration.voters {
            add(id, storage: MemoryRaftStorage(configuration: configuration))
        }
    }

    /// Starts a node over `storage` (a new member, or a restart).
    public mutating func add(_ id: NodeID, storage: MemoryRaftStorage) {
        seed &+= 0x9E37_79B9_7F4A_7C15
        cores[id] = try! Core(id: id, storage: storage, settings: settings, randomSeed: seed)
        disks[id] = nil
    }

    /// Crashes a node: everything not persisted is lost, queued messages to it are dropped.
    public mutating func crash(_ id: NodeID) {
        guard let core = cores.removeValue(forKey: id) else { return }
        disks[id] = core.storage
    }

    /// Restarts a crashed node from its disk; the test state machine restarts from the snapshot.
    public mutating func restart(_ id: NodeID) {
        guard let disk = disks[id] else { return }
        add(id, storage: disk)
        let snapshotIndex = disk.snapshotMetadata.index
        applied[id] = (applied[id] ?? []).filter { $0.index <= snapshotIndex }
    }

    /// The node ids, sorted.
    public var ids: [NodeID] { cores.keys.sorted() }

    /// The leader with the highest term, if any.
    public var leader: NodeID? {
        ids.filter { cores[$0]!.role == .leader }.max { cores[$0]!.term < cores[$1]!.term }
    }

    /// Handles every pending ready batch: persist, queue messages, apply, advance.
    public mutating func processReady() {
        var again = true
        while again {
            again = false
            for id in ids where cores[id]!.hasReady {
                again = true
                let ready = cores[id]!.ready()
                if let snapshot = ready.snapshot {
                    cores[id]!.storage.applySnapshot(snapshot)
                    installedSnapshots[id, default: []].append(snapshot.metadata)
                    applied[id] = (applied[id] ?? []).filter { $0.index <= snapshot.metadata.index }
                }
                cores[id]!.storage.append(ready.entries)
                if let hardState = ready.hardState { cores[id]!.storage.hardState = hardState }
                outbox.append(contentsOf: ready.messages)
                applied[id, default: []].append(contentsOf: ready.committedEntries)
                readStates[id, default: []].append(contentsOf: ready.readStates)
                cores[id]!.advance(ready)
            }
        }
    }

    /// Takes the queued messages out of the outbox (after handling ready batches).
    public mutating func takeMessages() -> [RaftMessage] {
        processReady()
        let messages = outbox
        outbox = []
        return messages
    }

    /// Delivers one message (dropped when either side is isolated or down).
    public mutating func deliver(_ message: RaftMessage) {
        guard cores[message.to] != nil, !isolated.contains(message.to), !isolated.contains(message.from) else { return }
        delivered.append(message)
        cores[message.to]!.step(message)
    }

    /// Delivers messages until none are left (at most `maxRounds` rounds).
    public mutating func stabilize(maxRounds: Int = 100) {
        for _ in 0..<maxRounds {
            let messages = takeMessages()
            if messages.isEmpty { return }
            for message in messages { deliver(message) }
        }
    }

    /// Ticks every running node `count` times, stabilizing after each tick.
    public mutating func tick(_ count: Int = 1) {
        for _ in 0..<count {
            for id in ids { cores[id]!.tick() }
            stabilize()
        }
    }

    /// Ticks until a leader exists (at most `limit` ticks) and returns it.
    @discardableResult
    public mutating func electLeader(limit: Int = 200) -> NodeID? {
        for _ in 0..<limit {
            if let leader, cores[leader]!.commitIndex > 0,
                cores[leader]!.term(at: cores[leader]!.commitIndex)
                    == cores[leader]!.term
            {
                return leader
            }
            tick()
        }
        return leader
    }

    /// Makes `id` campaign now and stabilizes.
    public mutating func campaign(_ id: NodeID) {
        cores[id]!.campaign()
        stabilize()
    }

    /// Proposes payloads at `id` and stabilizes.
    public mutating func propose(_ payloads: [[UInt8]], at id: NodeID) throws(RaftError) {
        try cores[id]!.propose(payloads)
        stabilize()
    }

    /// The payloads of the normal entries `id` applied.
    public func appliedPayloads(_ id: NodeID) -> [[UInt8]] {
        (applied[id] ?? []).filter { $0.kind == .normal }.map(\.payload)
    }
}
