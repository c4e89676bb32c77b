import BifrostRaftCore
import NIOCore
import Testing

@testable import BifrostRaft

/// A follower acknowledges appends in the replies to the leader's `raft.exchange` calls that carried them, once
/// the entries are durable, instead of calling the leader with each acknowledgement.
@Suite("Raft node: acknowledgements ride back in the replies to appends", .serialized)
struct AcknowledgementTests {
    /// The calls `member`'s transport has made so far.
    static func calls(of member: TestMember) async throws -> Int {
        try await member.inspectDriver { $0.transport.callsMade } ?? 0
    }

    @Test("200 writes one after another: the followers make almost no calls of their own; every write commits")
    func followersAnswerInReplies() async throws {
        // A heartbeat a second (elections after 3 to 6 s): a heartbeat answer in the reply to a call that also
        // carried an append answers that call at once, and the acknowledgement then takes a call of its own.
        try await TestNodeCluster.with(
            3,
            tune: { configuration in
                configuration.raft.heartbeatTick = 20
                configuration.raft.electionTick = 60
            }
        ) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            _ = try await client.set("warm-up", "0")
            let followers = cluster.members.values.filter { $0.id != leader }
            var before: [Int] = []
            for follower in followers { before.append(try await Self.calls(of: follower)) }
            var last: UInt64 = 0
            for n in 0..<200 {
                last = try await client.set("k\(n % 20)", "v\(n)").index
            }
            try await cluster.waitForApplied(last)
            for (follower, calls) in zip(followers, before) {
                let made = try await Self.calls(of: follower) - calls
                // Each write takes an append round, and acknowledgements on their own were two calls a write (401
                // and 408 in a run without this). What remains is bounded by the heartbeats, one a second.
                #expect(made < 100, "follower \(follower.id) made \(made) calls during 200 writes")
            }
            await client.close()
        }
    }
}
