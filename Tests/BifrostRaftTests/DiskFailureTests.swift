import BifrostRaftCore
import BifrostStorage
import NIOCore
import Testing

@testable import BifrostRaft

/// A node whose disk fails halts its group (as etcd does): no more writes, every waiter fails, the process and the
/// other members stay up. Here the failure is real: the member's RocksDB is closed under the running node, so its
/// next log write fails with `.closed`.
@Suite("Raft node: a follower whose disk fails halts; the cluster goes on", .serialized)
struct DiskFailureTests {
    /// The leader transport's calls in flight to `peer` (data calls plus the control call).
    static func callsInFlight(from leader: TestMember, to peer: NodeID) async throws -> Int {
        try await leader.inspectDriver { driver in
            guard let queue = driver.transport.queues[peer] else { return 0 }
            return queue.inFlight + (queue.controlInFlight ? 1 : 0)
        } ?? -1
    }

    /// Whether `member`'s group halted, and how many peers' calls its stages still hold.
    static func haltState(of member: TestMember) async throws -> (halted: Bool, heldReplies: Int) {
        try await member.inspectDriver { driver in
            (driver.halted != nil, driver.pipeline.reduce(0) { $0 + $1.heldReplies.count })
        } ?? (false, 0)
    }

    @Test("writes go on through the other two; the halted follower answers every call it held and refuses commands")
    func followerDiskFailure() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leaderID = try await cluster.waitForLeader()
            let client = cluster.client()
            _ = try await client.set("before", "0")
            guard let leader = cluster.members[leaderID],
                let failing = cluster.members.values.filter({ $0.id != leaderID }).min(by: { $0.id < $1.id })
            else {
                Issue.record("no leader or follower")
                return
            }
            failing.database?.close()

            // Writes keep committing on the leader and the other follower; the failing one halts at its next
            // log write, while it may hold the leader's calls that carried the entries.
            var last: UInt64 = 0
            for n in 0..<50 { last = try await client.set("k\(n)", "v\(n)").index }
            #expect(last > 0)
            var state = (halted: false, heldReplies: 0)
            _ = try await eventually(within: .seconds(10)) {
                state = try await Self.haltState(of: failing)
                return state.halted
            }
            #expect(state.halted, "follower \(failing.id) did not halt after its database was closed")
            #expect(state.heldReplies == 0, "a halted node still holds \(state.heldReplies) calls")

            // The leader's calls to the halted node all come back (held ones answered empty, new ones at once),
            // long before their 30 s timeout: none stays in flight for good. Heartbeats keep a call going out
            // now and then, so wait for a moment with none.
            var inFlight = 0
            _ = try await eventually(within: .seconds(10)) {
                inFlight = try await Self.callsInFlight(from: leader, to: failing.id)
                return inFlight == 0
            }
            #expect(inFlight == 0, "the leader still has \(inFlight) calls out to the halted follower")

            // More writes after the halt, and the halted node refuses a command as unavailable.
            last = try await client.set("after", "1").index
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await client.get("after") == "1")
            if let node = failing.node {
                let reply = await node.command(
                    RaftCommandRequest(
                        session: 0, sequence: 0, acknowledged: 0, stateMachine: TestMap.id, function: TestMap.set,
                        argument: []))
                guard case .failure(let error) = reply else {
                    Issue.record("a halted node accepted a command: \(reply)")
                    return
                }
                #expect(error.code == .unavailable)
                #expect(error.message.contains("halted"), "\(error.message)")
            }
            await client.close()
        }
    }

    @Test("the leader's disk fails: it halts, the other two elect a leader, and the client's writes go on there")
    func leaderDiskFailure() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leaderID = try await cluster.waitForLeader()
            let client = cluster.client()
            _ = try await client.set("before", "0")
            guard let leader = cluster.members[leaderID] else {
                Issue.record("no leader")
                return
            }
            leader.database?.close()
            // The next write fails on the leader's disk: the leader halts and stops sending heartbeats, so the
            // followers elect one of themselves, and the client follows it (its first write may fail meanwhile).
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: .seconds(20))
            var written: UInt64?
            var n = 0
            while written == nil, clock.now < deadline {
                n += 1
                written = try? await client.set("after-\(n)", "1").index
            }
            #expect(written != nil, "no write succeeded after the leader's disk failed")
            #expect(try await Self.haltState(of: leader).halted)
            let newLeader = try await cluster.waitForLeader(excluding: [leaderID])
            #expect(newLeader != leaderID)
            #expect(try await client.get("before") == "0")
            for m in 0..<20 { _ = try await client.set("more-\(m)", "2") }
            #expect(try await client.get("more-19") == "2")
            await client.close()
        }
    }
}
