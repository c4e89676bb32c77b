import BifrostRPC
import BifrostRaft
import BifrostRaftCore
import BifrostWire
import Logging
import NIOCore
import ServiceLifecycle
import Testing

@Suite("Raft node: clusters on loopback with RocksDB", .serialized)
struct RaftNodeTests {
    @Test("3 nodes elect a leader; writes through the client are readable on every node")
    func writesReplicate() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            var last: UInt64 = 0
            for n in 0..<50 {
                let (old, index) = try await client.set("k\(n % 10)", "v\(n)")
                #expect(old == (n < 10 ? nil : "v\(n - 10)"))
                #expect(index > last)
                last = index
            }
            // The client found a leader (under heavy load the leadership may have moved since `leader` was seen).
            let addresses = Set(cluster.members.values.map(\.address))
            #expect(
                client.leader.map(addresses.contains) == true,
                "leader \(leader), client saw \(String(describing: client.leader))")
            try await cluster.waitForApplied(last)
            for member in cluster.members.values {
                for consistency in ReadConsistency.allCases {
                    let value = await member.node?.get("k3", consistency, minIndex: last)
                    #expect(value == .success("v43"), "node \(member.id) at \(consistency)")
                }
            }
            await client.close()
        }
    }
}

extension RaftNodeTests {
    @Test("kill the leader: a new one takes over and writes continue; the old one restarts and catches up")
    func leaderFailover() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let first = try await cluster.waitForLeader()
            let client = cluster.client()
            for n in 0..<20 { _ = try await client.set("a\(n)", "\(n)") }
            await cluster.member(first).stop()
            let second = try await cluster.waitForLeader(excluding: [first])
            #expect(second != first)
            var last: UInt64 = 0
            for n in 0..<20 { last = try await client.set("b\(n)", "\(n)").index }
            try await cluster.member(first).start(.bootstrap([]), tune: cluster.tune)
            try await cluster.waitForApplied(last)
            let old = try #require(cluster.member(first).node)
            #expect(await old.get("b19", .stale) == .success("19"))
            #expect(await old.get("a0", .stale) == .success("0"))
            #expect(await old.info().leader?.id == second)
            await client.close()
        }
    }

    @Test("restart the whole cluster: every acknowledged write survives (and nothing is applied twice)")
    func wholeClusterRestart() async throws {
        try await TestNodeCluster.with(3) { cluster in
            _ = try await cluster.waitForLeader()
            let client = cluster.client()
            var acknowledged: [String: String] = [:]
            try await withThrowingTaskGroup(of: (String, String).self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for n in 0..<25 { _ = try await client.set("w\(worker)-\(n)", "\(n)") }
                        return ("w\(worker)-24", "24")
                    }
                }
                for try await (key, value) in group { acknowledged[key] = value }
            }
            await client.close()
            for member in cluster.members.values { await member.stop() }
            for member in cluster.members.values { try await member.start(.bootstrap([]), tune: cluster.tune) }
            _ = try await cluster.waitForLeader()
            let again = cluster.client()
            for (key, value) in acknowledged { #expect(try await again.get(key) == value) }
            let count = try await again.query(
                stateMachine: TestMap.id, function: TestMap.count, argument: [], consistency: .linearizable)
            #expect(try Wire.decode(UInt64.self, fromBytes: count.value) == 200)
            let applies = try await again.query(
                stateMachine: TestMap.id, function: TestMap.appliedCount, argument: [], consistency: .linearizable)
            #expect(try Wire.decode(UInt64.self, fromBytes: applies.value) == 200)
            await again.close()
        }
    }

    @Test("with no log cache, a follower that missed writes and a restarted cluster read the log back from disk")
    func noLogCache() async throws {
        try await TestNodeCluster.with(3, tune: { $0.logCacheBytes = 0 }) { cluster in
            let first = try await cluster.waitForLeader()
            let client = cluster.client()
            let follower = try #require(cluster.members.keys.sorted().first { $0 != first })
            await cluster.member(follower).stop()
            var last: UInt64 = 0
            for n in 0..<60 { last = try await client.set("k\(n)", String(repeating: "v", count: n)).index }
            // Every entry the follower is missing is read back from the leader's RocksDB log.
            try await cluster.member(follower).start(.bootstrap([]), tune: cluster.tune)
            try await cluster.waitForApplied(last)
            #expect(
                await cluster.member(follower).node?.get("k59", .stale) == .success(String(repeating: "v", count: 59)))
            await client.close()
            // A restart replays the whole log (no snapshot yet) from disk, in pieces.
            for member in cluster.members.values { await member.stop() }
            for member in cluster.members.values { try await member.start(.bootstrap([]), tune: cluster.tune) }
            _ = try await cluster.waitForLeader()
            let again = cluster.client()
            for n in [0, 30, 59] { #expect(try await again.get("k\(n)") == String(repeating: "v", count: n)) }
            let applies = try await again.query(
                stateMachine: TestMap.id, function: TestMap.appliedCount, argument: [], consistency: .linearizable)
            #expect(try Wire.decode(UInt64.self, fromBytes: applies.value) == 60)
            await again.close()
        }
    }

    @Test("a node added to a cluster holding more than a snapshot's worth of data installs the snapshot")
    func joinInstallsSnapshot() async throws {
        try await TestNodeCluster.with(3, tune: { $0.snapshotEntries = 40 }) { cluster in
            _ = try await cluster.waitForLeader()
            let client = cluster.client()
            var last: UInt64 = 0
            for n in 0..<150 { last = try await client.set("k\(n)", String(repeating: "x", count: n)).index }
            try await cluster.waitForApplied(last)
            for member in cluster.members.values {
                #expect(await member.node?.info().snapshotIndex ?? 0 > 0, "node \(member.id) took no snapshot")
            }
            let joiner = cluster.member(4)
            try await joiner.start(.join(seeds: cluster.seeds), tune: cluster.tune)
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: .seconds(20))
            var info = await joiner.node?.info()
            while clock.now < deadline,
                info?.voters.contains(where: { $0.id == 4 }) != true || (info?.appliedIndex ?? 0) < last
            {
                try await Task.sleep(for: .milliseconds(20))
                info = await joiner.node?.info()
            }
            #expect(info?.voters.map(\.id).sorted() == [1, 2, 3, 4])
            #expect((info?.snapshotIndex ?? 0) > 0, "the joiner did not install a snapshot")
            let node = try #require(joiner.node)
            #expect(await node.get("k149", .stale) == .success(String(repeating: "x", count: 149)))
            #expect(await node.get("k0", .linearizable) == .success(""))
            await client.close()
        }
    }

    @Test("remove the leader: it hands over, the rest carry on with a new leader")
    func removeLeader() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            _ = try await client.set("before", "1")
            try await client.changeMembership(.remove(leader))
            let next = try await cluster.waitForLeader(excluding: [leader])
            #expect(next != leader)
            let info = try #require(await cluster.member(next).node?.info())
            #expect(info.voters.map(\.id).sorted() == [1, 2, 3].filter { $0 != leader })
            _ = try await client.set("after", "2")
            #expect(try await client.get("before") == "1")
            await client.close()
        }
    }

    @Test("leadership transfer moves the leader to the requested voter")
    func leadershipTransfer() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            _ = try await client.set("x", "1")
            let target: NodeID = leader == 3 ? 1 : leader + 1
            try await client.changeMembership(.transferLeadership(target))
            #expect(try await cluster.waitForLeader() == target)
            _ = try await client.set("x", "2")
            #expect(try await client.get("x") == "2")
            await client.close()
        }
    }

    @Test("exactly-once: a command retried after a leader change is applied once and gets the original result")
    func exactlyOnceAcrossLeaderChange() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let node = try #require(cluster.member(leader).node)
            guard case .ok(let sessionBytes, _) = await node.openSession() else {
                Issue.record("no session")
                return
            }
            let session = try Wire.decode(UInt64.self, fromBytes: sessionBytes)
            let request = RaftCommandRequest(
                session: session, sequence: 1, acknowledged: 0, stateMachine: TestMap.id, function: TestMap.set,
                argument: Wire.encodeToBytes(["k", "v1"]))
            let first = await node.command(request)
            guard case .ok(_, let firstIndex) = first else {
                Issue.record("first attempt failed: \(first)")
                return
            }
            // The leader goes away; the client's retry (same session and sequence) reaches the new leader.
            await cluster.member(leader).stop()
            let next = try await cluster.waitForLeader(excluding: [leader])
            let retry = try #require(await cluster.member(next).node?.command(request))
            #expect(retry == first)
            guard case .ok(_, let index) = retry else { return }
            #expect(index == firstIndex)
            let applies = await cluster.member(next).node?.query(
                RaftQueryRequest(
                    consistency: .linearizable, minIndex: 0, stateMachine: TestMap.id, function: TestMap.appliedCount,
                    argument: []))
            guard case .ok(let count, _) = applies else {
                Issue.record("query failed: \(String(describing: applies))")
                return
            }
            #expect(try Wire.decode(UInt64.self, fromBytes: count) == 1)
        }
    }

    @Test("a stale follower cut off from the leader must not serve a linearizable read; stale reads are old")
    func staleFollowerRefusesLinearizableRead() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            _ = try await client.set("x", "old")
            let follower = [NodeID(1), 2, 3].first { $0 != leader }!
            try await cluster.waitForApplied(try await client.set("y", "1").index)
            // The follower restarts on a new port: the others keep sending to its old address, so it hears nothing.
            let member = cluster.member(follower)
            await member.stop()
            let newest = try await client.set("x", "new").index
            member.port = 0
            try await member.start(.bootstrap([]), tune: cluster.tune)
            let node = try #require(member.node)
            try await Task.sleep(for: .milliseconds(300))
            #expect(await node.get("x", .stale) == .success("old"))
            if case .success(let value) = await node.get("x", .linearizable) {
                Issue.record("a cut-off follower served a linearizable read: \(String(describing: value))")
            }
            if case .success(let value) = await node.get("x", .sequential, minIndex: newest) {
                Issue.record("a stale follower served a sequential read below minIndex: \(String(describing: value))")
            }
            // The leader still serves all levels with the newest value.
            let leaderNode = try #require(cluster.member(leader).node)
            for consistency in [ReadConsistency.linearizable, .lease] {
                #expect(await leaderNode.get("x", consistency) == .success("new"))
            }
            await client.close()
        }
    }
}

extension RaftNodeTests {
    @Test("two Raft groups on one server, one database and one RPC client each: independent state and leaders")
    func twoGroupsOnOneServer() async throws {
        try await TestNodeCluster.with(3) { cluster in
            _ = try await cluster.waitForLeader()
            let peers = [NodeID(1), 2, 3].map { cluster.member($0).peer }
            var second: [RaftNode] = []
            for id in [NodeID(1), 2, 3] {
                second.append(try await cluster.member(id).startGroup(7, peers: peers, tune: cluster.tune))
            }
            let zero = cluster.client()
            let seven = cluster.client { $0.group = 7 }
            for n in 0..<20 {
                _ = try await zero.set("k\(n)", "zero-\(n)")
                _ = try await seven.set("k\(n)", "seven-\(n)")
            }
            #expect(try await zero.get("k7") == "zero-7")
            #expect(try await seven.get("k7") == "seven-7")
            _ = try await seven.set("only-seven", "1")
            #expect(try await zero.get("only-seven") == nil)
            for node in second { #expect(await node.info().group == 7) }
            // Both groups' traffic between a pair of servers shares the members' RPC clients (one connection each).
            await zero.close()
            await seven.close()
        }
    }

    @Test("5 nodes: two members fail, the other three keep committing; both rejoin and catch up")
    func fiveNodesSurviveTwoFailures() async throws {
        try await TestNodeCluster.with(5) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            for n in 0..<10 { _ = try await client.set("a\(n)", "\(n)") }
            let victims = [leader, leader == 5 ? 1 : leader + 1]
            for victim in victims { await cluster.member(victim).stop() }
            _ = try await cluster.waitForLeader(excluding: Set(victims))
            var last: UInt64 = 0
            for n in 0..<20 { last = try await client.set("b\(n)", "\(n)").index }
            for victim in victims { try await cluster.member(victim).start(.bootstrap([]), tune: cluster.tune) }
            try await cluster.waitForApplied(last)
            for victim in victims {
                #expect(await cluster.member(victim).node?.get("b19", .stale) == .success("19"))
            }
            await client.close()
        }
    }

    @Test("exactly-once under forced retries: attempts time out constantly, every command still applies once")
    func exactlyOnceUnderForcedRetries() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            // Attempts time out after 3 ms: most commands are retried (same session, same sequence), some many times.
            let client = cluster.client {
                $0.attemptTimeout = .milliseconds(3)
                $0.initialBackoff = .milliseconds(1)
                $0.maxBackoff = .milliseconds(5)
                $0.deadline = .seconds(30)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        for n in 0..<25 { _ = try await client.set("w\(worker)", "\(n)") }
                    }
                }
                try await group.waitForAll()
            }
            let node = try #require(cluster.member(leader).node)
            let applies = await node.query(
                RaftQueryRequest(
                    consistency: .linearizable, minIndex: 0, stateMachine: TestMap.id, function: TestMap.appliedCount,
                    argument: []))
            guard case .ok(let count, _) = applies else {
                Issue.record("query failed: \(applies)")
                return
            }
            #expect(try Wire.decode(UInt64.self, fromBytes: count) == 100)
            for worker in 0..<4 { #expect(await node.get("w\(worker)", .linearizable) == .success("24")) }
            await client.close()
        }
    }
}

extension RaftNodeTests {
    @Test("a follower leaves the group; the others drop it from the configuration and keep committing")
    func followerLeaves() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let leaving: NodeID = leader == 1 ? 2 : 1
            let node = try #require(cluster.member(leaving).node)
            try await node.leave()
            await cluster.member(leaving).stop()
            let client = cluster.client()
            _ = try await client.set("after-leave", "1")
            let info = try #require(await cluster.member(leader).node?.info())
            #expect(info.voters.map(\.id).sorted() == [1, 2, 3].filter { $0 != leaving })
            await client.close()
        }
    }
}

extension RaftNodeTests {
    @Test("malformed payloads and bogus peer messages get typed errors or are dropped; the node stays up")
    func hostileInput() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let target = try #require(RPCAddress(cluster.member(leader).address))
            let rpc = RPCClient()
            let service = RaftServiceID.forGroup(0)
            let functions = [
                RaftServiceFunction.step, RaftServiceFunction.command, RaftServiceFunction.commands,
                RaftServiceFunction.query,
                RaftServiceFunction.closeSession, RaftServiceFunction.membership,
            ]
            var generator = SystemRandomNumberGenerator()
            for function in functions {
                for length in [0, 1, 7, 64, 300] {
                    let junk = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    do {
                        _ = try await rpc.call(
                            target, service: service, function: function, payload: ByteBuffer(bytes: junk))
                        // Some junk may decode (e.g. an empty batch); then it must have been harmless.
                    } catch let error as RPCError {
                        #expect(error.code == .badRequest, "function \(function), \(length) bytes: \(error)")
                    } catch {
                        Issue.record("unexpected error \(error)")
                    }
                }
            }
            // Well-formed but bogus peer traffic: a stranger claiming a huge term for another node, a message to
            // someone else, an append from nowhere. The core drops what is not addressed to it.
            let bogus = RaftPeerBatch(
                from: RaftPeer(id: 99, address: "127.0.0.1:1"),
                messages: [
                    RaftMessage(from: 99, to: 12345, term: 1_000_000, body: .timeoutNow),
                    RaftMessage(
                        from: 0, to: leader, term: 1_000_000,
                        body: .append(AppendRequest(prevIndex: 1 << 40, prevTerm: 3, entries: [], commit: 1 << 50))),
                ])
            _ = try await rpc.call(
                target, service: service, function: RaftServiceFunction.step, payload: Wire.encode(bogus))
            let client = cluster.client()
            _ = try await client.set("still", "up")
            #expect(try await client.get("still") == "up")
            #expect(try await cluster.waitForLeader() == leader)
            await client.close()
            await rpc.shutdown()
        }
    }
}

extension RaftNodeTests {
    @Test("as a swift-service-lifecycle service, a node stops on graceful shutdown and run() returns")
    func serviceLifecycle() async throws {
        try await TestNodeCluster.with(3) { cluster in
            _ = try await cluster.waitForLeader()
            let member = cluster.member(3)
            let node = try #require(member.node)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: node)], gracefulShutdownSignals: [], logger: Logger(label: "test")))
            let running = Task { try await group.run() }
            #expect(await node.info().role != "stopped")
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(await node.info().role == "stopped")
            member.node = nil
            await member.stop()
            let client = cluster.client()
            _ = try await client.set("two-of-three", "ok")
            await client.close()
        }
    }
}
