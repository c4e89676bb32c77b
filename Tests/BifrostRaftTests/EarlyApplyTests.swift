import BifrostRaftCore
import Dispatch
import NIOPosix
import Synchronization
import Testing

@testable import BifrostRaft

@Suite("Applying committed entries before this node's own log write", .serialized)
struct EarlyApplyTests {
    @Test("a leader whose disk thread is stuck still answers the commands its followers made durable")
    func leaderAnswersBeforeItsOwnWrite() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leaderID = try await cluster.waitForLeader()
            let leader = try #require(cluster.member(leaderID).node)
            let client = cluster.client()
            _ = try await client.set("warm", "up")

            // The leader's disk thread blocks until the test lets it go: its own log writes wait behind this.
            let gate = DispatchSemaphore(value: 0)
            leader.diskPool.submit { _ in gate.wait() }
            let done = Flag()
            let command = Task {
                defer { done.value.store(true, ordering: .releasing) }
                return try await client.set("k", "v")
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline, !done.value.load(ordering: .acquiring) {
                try await Task.sleep(for: .milliseconds(20))
            }
            let answered = done.value.load(ordering: .acquiring)
            gate.signal()
            #expect(answered, "the reply waited for the leader's own disk write")
            let reply = try await command.value
            #expect(reply.old == nil)

            // Once the disk thread is free, everything goes on: the entry is in the leader's log too.
            #expect(try await client.set("k", "w").old == "v")
            #expect(try await client.get("k") == "w")
            await client.close()
        }
    }
}

/// A flag a task raises when it finishes.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
