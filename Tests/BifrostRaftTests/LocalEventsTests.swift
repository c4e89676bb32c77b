import BifrostRaft
import BifrostRaftCore
import BifrostWire
import Testing

/// The values of `onSet` events, decoded.
func onSetValues(_ records: [RaftRaisedEventRecord]) -> [String] {
    records.compactMap { try? WireDecoder().decode(String.self, fromBytes: $0.event.payload) }
}

/// Reads `count` events from `stream`.
func take(
    _ count: Int, from stream: AsyncThrowingStream<RaftRaisedEventRecord, any Error>
) async throws -> [RaftRaisedEventRecord] {
    var records: [RaftRaisedEventRecord] = []
    for try await record in stream {
        records.append(record)
        if records.count == count { break }
    }
    return records
}

@Suite("Node-local event streams (RaftNode.localEvents)", .serialized)
struct LocalEventsTests {
    @Test("a follower streams the events it applies, filtered by pattern, across a leader change, and resumes")
    func followerStreamsAndResumes() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let followerID = try #require(cluster.members.keys.sorted().first { $0 != leader })
            let follower = try #require(cluster.member(followerID).node)
            let onlyA = follower.localEvents(RaftEventFilter(TestMap.onSet, stateMachine: TestMap.id) { $0 == "a" })
            let client = cluster.client()
            var indexes: [UInt64] = []
            for n in 0..<6 { indexes.append(try await client.set(n % 2 == 0 ? "a" : "b", "v\(n)").index) }

            // The leader changes; the follower's local stream goes on.
            await cluster.member(leader).stop()
            _ = try await cluster.waitForLeader(excluding: [leader])
            indexes.append(try await client.set("a", "v6").index)

            let received = try await take(4, from: onlyA)
            #expect(onSetValues(received) == ["v0", "v2", "v4", "v6"])
            #expect(received.map(\.index) == [indexes[0], indexes[2], indexes[4], indexes[6]])

            // Resuming after the second event replays the rest from the buffer, on any node.
            let after = RaftEventPosition(index: received[1].index, ordinal: received[1].ordinal)
            let resumed = follower.localEvents(
                RaftEventFilter(TestMap.onSet, stateMachine: TestMap.id) { $0 == "a" }, after: after)
            #expect(onSetValues(try await take(2, from: resumed)) == ["v4", "v6"])
            await client.close()
        }
    }

    @Test("a position older than the replay buffer, and a consumer that falls behind, end with eventsLost")
    func eventsLost() async throws {
        try await TestNodeCluster.with(1, tune: { $0.subscriptionReplayEvents = 4 }) { cluster in
            let id = try await cluster.waitForLeader()
            let node = try #require(cluster.member(id).node)
            let filter = RaftEventFilter(TestMap.onSet, stateMachine: TestMap.id)
            // A consumer that does not read: its buffer holds 2 events, the third ends it.
            let slow = node.localEvents(filter, bufferLimit: 2)
            let client = cluster.client()
            var first: UInt64 = 0
            for n in 0..<10 {
                let index = try await client.set("k", "\(n)").index
                if n == 0 { first = index }
            }
            var delivered: [String] = []
            let error = await #expect(throws: RaftClientError.self) {
                for try await record in slow { delivered += onSetValues([record]) }
            }
            #expect(error?.code == .eventsLost)
            #expect(delivered == ["0", "1"])

            // The buffer keeps 4 events: resuming before them fails at once, resuming within them works.
            let tooOld = node.localEvents(filter, after: RaftEventPosition(index: first))
            let lost = await #expect(throws: RaftClientError.self) { _ = try await take(1, from: tooOld) }
            #expect(lost?.code == .eventsLost)
            let recent = node.localEvents(filter, after: RaftEventPosition(index: first + 6))
            #expect(onSetValues(try await take(3, from: recent)) == ["7", "8", "9"])
            await client.close()
        }
    }

    @Test("linearizable reads served by followers (linearizableReadsOnFollowers) see every acknowledged write")
    func followerLinearizableReads() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let followers = cluster.members.values.filter { $0.id != leader }.map(\.address).sorted()
            let writer = cluster.client()
            // Seeded with the followers only: the reader's reads go to them, round robin.
            var configuration = RaftClientConfiguration()
            configuration.linearizableReadsOnFollowers = true
            configuration.deadline = .seconds(20)
            let reader = RaftClient(seeds: followers, configuration: configuration)
            for n in 0..<20 {
                _ = try await writer.set("k", "\(n)")
                #expect(try await reader.get("k") == "\(n)", "read \(n) from a follower")
            }
            await reader.close()
            await writer.close()
        }
    }
}
