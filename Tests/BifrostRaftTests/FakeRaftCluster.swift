import BifrostRPC
import BifrostRaft
import BifrostWire
import NIOCore
import Synchronization
import Testing

/// A scripted stand-in for a Raft group, for client tests: N nodes, each an `RPCServer` on 127.0.0.1 with a
/// hand-written Raft service, whose behaviour the test controls (who leads, how far each node has applied,
/// delays, lost replies, expired sessions). The "replicated" state (the log index, the session table) is one
/// shared table, as if every node had the same committed log.
final class FakeRaftCluster: Sendable {
    /// What a node does.
    struct Behaviour: Sendable {
        /// Whether a node that is not the leader names the leader in `notLeader` (else it answers `noLeader`).
        var hintsLeader = true
        /// The node's applied index; nil: up to date (the cluster's last index).
        var appliedIndex: UInt64?
        /// Whether sequential reads below `minIndex` are answered anyway, at the old index (a buggy node).
        var ignoresMinIndex = false
        /// A delay before every reply.
        var delay: Duration = .zero
        /// Serves `linearizable` reads as a follower too (as a real node does, with ReadIndex).
        var servesLinearizableReads = false
        /// The replies to the next this many commands applied are lost: the command is applied, the reply never
        /// sent (the replies to retries, from the session table, are sent).
        var dropCommandReplies = 0
    }

    /// One request as a node saw it.
    struct Received: Sendable {
        var node: Int
        var function: String
        var session: UInt64 = 0
        var sequence: UInt64 = 0
        var acknowledged: UInt64 = 0
        var consistency: ReadConsistency?
        var minIndex: UInt64 = 0
    }

    struct Applied: Sendable, Hashable {
        var session: UInt64
        var sequence: UInt64
    }

    private struct State {
        var addresses: [String] = []
        var behaviours: [Behaviour] = []
        var up: [Bool] = []
        /// The leader's node number (0-based), or nil when there is none.
        var leader: Int? = 0
        var lastIndex: UInt64 = 0
        var nextSession: UInt64 = 100
        var liveSessions: Set<UInt64> = []
        /// The exactly-once table: the first result of each (session, sequence).
        var results: [Applied: (value: [UInt8], index: UInt64)] = [:]
        var applyCounts: [Applied: Int] = [:]
        var received: [Received] = []
        var openedSessions = 0
    }

    private let state = Mutex(State())
    private let servers = Mutex<[RPCServer?]>([])

    static let group: UInt64 = 0

    /// Starts `count` nodes; node 0 leads.
    static func start(nodes count: Int, inProcess: Bool = true) async throws -> FakeRaftCluster {
        let cluster = FakeRaftCluster()
        cluster.state.withLock { state in
            state.behaviours = Array(repeating: Behaviour(), count: count)
            state.up = Array(repeating: true, count: count)
        }
        var started: [RPCServer] = []
        for node in 0..<count {
            let router = RPCRouter()
            router.register(FakeRaftService(cluster: cluster, node: node), as: RaftServiceID.forGroup(group))
            var configuration = RPCServerConfiguration()
            configuration.registersInProcess = inProcess
            configuration.shutdownGracePeriod = .milliseconds(100)
            do {
                started.append(try await RPCServer.start(configuration: configuration, router: router))
            } catch {
                for server in started { await server.shutdown(gracePeriod: .zero) }
                throw error
            }
        }
        let addresses = started.map(\.localAddress.description)
        cluster.state.withLock { $0.addresses = addresses }
        cluster.servers.withLock { $0 = started }
        return cluster
    }

    /// Shuts every node down.
    func shutdown() async {
        let all = servers.withLock { servers in
            defer { servers = servers.map { _ in nil } }
            return servers.compactMap { $0 }
        }
        for server in all { await server.shutdown(gracePeriod: .milliseconds(50)) }
    }

    /// Takes node `node` down (its port closes).
    func stop(_ node: Int) async {
        state.withLock { $0.up[node] = false }
        let server = servers.withLock { servers in
            defer { servers[node] = nil }
            return servers[node]
        }
        await server?.shutdown(gracePeriod: .milliseconds(50))
    }

    // MARK: Script

    var addresses: [String] { state.withLock { $0.addresses } }
    func address(_ node: Int) -> String { state.withLock { $0.addresses[node] } }

    func setLeader(_ node: Int?) { state.withLock { $0.leader = node } }

    func update(_ node: Int, _ change: (inout Behaviour) -> Void) {
        state.withLock { change(&$0.behaviours[node]) }
    }

    func expire(session: UInt64) { _ = state.withLock { $0.liveSessions.remove(session) } }

    var received: [Received] { state.withLock { $0.received } }
    var applyCounts: [Applied: Int] { state.withLock { $0.applyCounts } }
    var lastIndex: UInt64 { state.withLock { $0.lastIndex } }
    var openedSessions: Int { state.withLock { $0.openedSessions } }
    func firstResult(session: UInt64, sequence: UInt64) -> [UInt8]? {
        state.withLock { $0.results[Applied(session: session, sequence: sequence)]?.value }
    }

    /// Appends `count` entries to the log (as other clients' commands would).
    func advance(by count: UInt64) { state.withLock { $0.lastIndex += count } }

    // MARK: Serving

    /// What a node's handler decided: a reply, after its delay, or a reply that is never sent.
    fileprivate enum Decision {
        case reply(ByteBuffer)
        case drop
    }

    fileprivate func delay(of node: Int) -> Duration { state.withLock { $0.behaviours[node].delay } }

    /// Not the leader: `notLeader` with a hint, or `noLeader`.
    private func redirect(_ state: State, node: Int) -> RaftReply? {
        guard state.leader != node else { return nil }
        if let leader = state.leader, state.behaviours[node].hintsLeader {
            return .failure(
                RaftClientError(
                    code: .notLeader, message: "node \(node) is a follower",
                    leaderHint: RaftPeer(id: UInt64(leader + 1), address: state.addresses[leader])))
        }
        return .failure(RaftClientError(code: .noLeader, message: "node \(node) knows no leader"))
    }

    fileprivate func command(_ request: RaftCommandRequest, node: Int, function: String = "command") -> Decision {
        state.withLock { state -> Decision in
            state.received.append(
                Received(
                    node: node, function: function, session: request.session, sequence: request.sequence,
                    acknowledged: request.acknowledged))
            if let redirect = redirect(state, node: node) { return .reply(Wire.encode(redirect)) }
            let key = Applied(session: request.session, sequence: request.sequence)
            let reply: RaftReply
            var fresh = false
            if request.session != 0 && !state.liveSessions.contains(request.session) {
                reply = .failure(RaftClientError(code: .sessionExpired, message: "session \(request.session)"))
            } else if request.session != 0, let cached = state.results[key] {
                reply = .ok(value: cached.value, index: cached.index)
            } else {
                state.lastIndex += 1
                let value = request.argument + Wire.encodeToBytes(state.lastIndex)
                state.applyCounts[key, default: 0] += 1
                if request.session != 0 { state.results[key] = (value, state.lastIndex) }
                reply = .ok(value: value, index: state.lastIndex)
                fresh = true
            }
            if fresh && state.behaviours[node].dropCommandReplies > 0 {
                state.behaviours[node].dropCommandReplies -= 1
                return .drop
            }
            return .reply(Wire.encode(reply))
        }
    }

    fileprivate func query(_ request: RaftQueryRequest, node: Int) -> ByteBuffer {
        let reply = state.withLock { state -> RaftReply in
            state.received.append(
                Received(
                    node: node, function: "query", consistency: request.consistency, minIndex: request.minIndex))
            let behaviour = state.behaviours[node]
            let applied = behaviour.appliedIndex ?? state.lastIndex
            // The value names the serving node.
            let value = [UInt8(node)] + request.argument
            switch request.consistency {
            case .linearizable where behaviour.servesLinearizableReads:
                return .ok(value: value, index: state.lastIndex)
            case .linearizable, .lease:
                if let redirect = redirect(state, node: node) { return redirect }
                return .ok(value: value, index: applied)
            case .sequential:
                if applied < request.minIndex && !behaviour.ignoresMinIndex {
                    return .failure(
                        RaftClientError(code: .staleRead, message: "node \(node) applied \(applied)"))
                }
                return .ok(value: value, index: applied)
            case .stale:
                return .ok(value: value, index: applied)
            }
        }
        return Wire.encode(reply)
    }

    fileprivate func openSession(node: Int) -> ByteBuffer {
        let reply = state.withLock { state -> RaftReply in
            state.received.append(Received(node: node, function: "openSession"))
            if let redirect = redirect(state, node: node) { return redirect }
            state.nextSession += 1
            state.lastIndex += 1
            state.openedSessions += 1
            state.liveSessions.insert(state.nextSession)
            return .ok(value: Wire.encodeToBytes(state.nextSession), index: state.lastIndex)
        }
        return Wire.encode(reply)
    }

    fileprivate func closeSession(_ session: UInt64, node: Int) -> ByteBuffer {
        let reply = state.withLock { state -> RaftReply in
            state.received.append(Received(node: node, function: "closeSession", session: session))
            if let redirect = redirect(state, node: node) { return redirect }
            state.liveSessions.remove(session)
            return .ok(value: [], index: state.lastIndex)
        }
        return Wire.encode(reply)
    }

    fileprivate func membership(node: Int) -> ByteBuffer {
        let reply = state.withLock { state -> RaftReply in
            state.received.append(Received(node: node, function: "membership"))
            if let redirect = redirect(state, node: node) { return redirect }
            state.lastIndex += 1
            return .ok(value: [], index: state.lastIndex)
        }
        return Wire.encode(reply)
    }

    fileprivate func info(node: Int) -> ByteBuffer {
        let info = state.withLock { state -> RaftClusterInfo in
            state.received.append(Received(node: node, function: "info"))
            let peers = state.addresses.enumerated().map { RaftPeer(id: UInt64($0.offset + 1), address: $0.element) }
            let leader = state.leader.map { peers[$0] }
            let applied = state.behaviours[node].appliedIndex ?? state.lastIndex
            return RaftClusterInfo(
                group: Self.group, node: peers[node], role: state.leader == node ? "leader" : "follower", term: 1,
                leader: leader, commitIndex: state.lastIndex, appliedIndex: applied, lastIndex: state.lastIndex,
                snapshotIndex: 0, voters: peers, learners: [])
        }
        return Wire.encode(info)
    }
}

/// The Raft service of one fake node.
private struct FakeRaftService: RPCService {
    let cluster: FakeRaftCluster
    let node: Int

    var functions: RPCFunctionTable {
        var table = RPCFunctionTable()
        let cluster = self.cluster
        let node = self.node
        @Sendable func delayed(_ reply: ByteBuffer) async throws -> ByteBuffer {
            let delay = cluster.delay(of: node)
            if delay > .zero { try await Task.sleep(for: delay) }
            return reply
        }
        table.register("raft.command", id: RaftServiceFunction.command) { payload, _ in
            let request = try Wire.decode(RaftCommandRequest.self, from: payload)
            switch cluster.command(request, node: node) {
            case .reply(let reply):
                return try await delayed(reply)
            case .drop:
                // The reply is lost: wait until the caller gives up (the call is cancelled) or the server stops.
                try await Task.sleep(for: .seconds(30))
                return ByteBuffer()
            }
        }
        table.register("raft.commands", id: RaftServiceFunction.commands) { payload, _ in
            // Each command as `raft.command` handles it; a lost reply loses the batch's.
            var replies: [RaftReply] = []
            for request in try Wire.decode([RaftCommandRequest].self, from: payload) {
                switch cluster.command(request, node: node, function: "commands") {
                case .reply(let reply):
                    replies.append(try Wire.decode(RaftReply.self, from: reply))
                case .drop:
                    try await Task.sleep(for: .seconds(30))
                    return ByteBuffer()
                }
            }
            return try await delayed(Wire.encode(replies))
        }
        table.register("raft.query", id: RaftServiceFunction.query) { payload, _ in
            try await delayed(cluster.query(try Wire.decode(RaftQueryRequest.self, from: payload), node: node))
        }
        table.register("raft.openSession", id: RaftServiceFunction.openSession) { _, _ in
            try await delayed(cluster.openSession(node: node))
        }
        table.register("raft.closeSession", id: RaftServiceFunction.closeSession) { payload, _ in
            try await delayed(cluster.closeSession(try Wire.decode(UInt64.self, from: payload), node: node))
        }
        table.register("raft.info", id: RaftServiceFunction.info) { _, _ in
            try await delayed(cluster.info(node: node))
        }
        table.register("raft.membership", id: RaftServiceFunction.membership) { payload, _ in
            _ = try Wire.decode(RaftMembershipRequest.self, from: payload)
            return try await delayed(cluster.membership(node: node))
        }
        return table
    }
}

/// Runs `body` with a fresh cluster, and shuts the cluster (and the client's RPC connections) down afterwards,
/// whether `body` succeeds or fails.
func withFakeCluster(
    nodes: Int = 3,
    inProcess: Bool = true,
    _ body: (FakeRaftCluster) async throws -> Void
) async throws {
    let cluster = try await FakeRaftCluster.start(nodes: nodes, inProcess: inProcess)
    do {
        try await body(cluster)
    } catch {
        await cluster.shutdown()
        throw error
    }
    await cluster.shutdown()
}

/// Waits until `condition` holds, polling, for at most `limit`. The limit only bounds a failing run: a passing one
/// returns as soon as the condition holds (tens of milliseconds). It is generous because the whole suite runs in
/// parallel on two cores, with other tests keeping the shared event loops busy (a clean-clone CI run once needed
/// more than 5 s for eight 10 ms commands).
func eventually(
    within limit: Duration = .seconds(30), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let end = ContinuousClock.now + limit
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return try await condition()
}
