import BifrostRPC
import BifrostRaft
import BifrostRaftCore
import BifrostWire
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
            #expect(client.leader == cluster.members[leader]?.address)
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
