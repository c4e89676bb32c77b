import BifrostRPC
import BifrostRaft
import BifrostRaftCore
import BifrostWire
import NIOCore
import Synchronization
import Testing

/// Collects the messages a node pushes to an in-process watcher.
final class PushCollector: Sendable {
    let messages = Mutex<[RaftWatchMessage]>([])
    var writer: RPCPushWriter {
        RPCPushWriter { [self] buffer in
            if let message = try? Wire.decode(RaftWatchMessage.self, from: buffer) {
                messages.withLock { $0.append(message) }
            }
        }
    }
}

/// Acknowledged writes: value → log index.
final class Acknowledged: Sendable {
    let values = Mutex<[String: UInt64]>([:])
}

@Suite("Subscriptions: replicated registrations, leader delivery, failover without silent loss", .serialized)
struct SubscriptionTests {
    @Test("a subscription with and without a pattern receives exactly the matching events, in order, with indexes")
    func patterns() async throws {
        try await TestNodeCluster.with(3) { cluster in
            _ = try await cluster.waitForLeader()
            let client = cluster.client()
            let all = try await client.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: nil)
            let onlyB = try await client.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: "b")
            var indexes: [UInt64] = []
            for n in 0..<10 { indexes.append(try await client.set(n % 2 == 0 ? "a" : "b", "\(n)").index) }
            var received: [(UInt64, String)] = []
            for try await event in all {
                received.append((event.index, event.value))
                if received.count == 10 { break }
            }
            #expect(received.map(\.0) == indexes)
            #expect(received.map(\.1) == (0..<10).map { "\($0)" })
            var bs: [String] = []
            for try await event in onlyB {
                bs.append(event.value)
                if bs.count == 5 { break }
            }
            #expect(bs == ["1", "3", "5", "7", "9"])
            await client.close()
        }
    }

    @Test("the leader is killed during concurrent writes: every event arrives once, in commit order (or eventsLost)")
    func failoverDeliversEveryEventOnce() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let subscriber = cluster.client()
            let subscription = try await subscriber.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: nil)
            let writer = cluster.client()
            let acknowledged = Acknowledged()
            let writes = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<4 {
                        group.addTask {
                            for n in 0..<40 {
                                let value = "w\(worker)-\(n)"
                                let index = try await writer.set("k\(worker)", value).index
                                acknowledged.values.withLock { $0[value] = index }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            while acknowledged.values.withLock({ $0.count }) < 40 { try await Task.sleep(for: .milliseconds(5)) }
            await cluster.member(leader).stop()
            try await writes.value
            let expected = acknowledged.values.withLock { $0 }
            var seen: [String: UInt64] = [:]
            var positions: [(UInt64, UInt32)] = []
            do {
                for try await event in subscription.raw {
                    let value = try Wire.decode(String.self, fromBytes: event.payload)
                    #expect(seen[value] == nil, "event \(value) delivered twice")
                    seen[value] = event.index
                    positions.append((event.index, event.ordinal))
                    if expected.keys.allSatisfy({ seen[$0] != nil }) { break }
                }
            } catch let error as RaftClientError {
                #expect(error.code == .eventsLost, "the subscription ended with \(error)")
            }
            for (first, second) in zip(positions, positions.dropFirst()) {
                #expect(first < second, "out of order: \(first) then \(second)")
            }
            for (value, index) in expected where seen[value] != nil { #expect(seen[value] == index) }
            #expect(expected.keys.allSatisfy { seen[$0] != nil })
            await subscriber.close()
            await writer.close()
        }
    }

    @Test("unsubscribing and closing the owning session remove subscriptions on every node")
    func cleanup() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            let first = try await client.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: "x")
            let second = try await client.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: nil)
            let node = try #require(cluster.member(leader).node)
            #expect(Set(await node.subscriptions().keys) == [first.raw.id, second.raw.id])
            try await client.unsubscribe(first.raw.id)
            #expect(Set(await node.subscriptions().keys) == [second.raw.id])
            // Closing the client closes its session: the subscriptions it owned go with it.
            await client.close()
            let probe = cluster.client()
            let index = try await probe.set("sync", "1").index
            try await cluster.waitForApplied(index)
            for member in cluster.members.values {
                #expect(await member.node?.subscriptions().isEmpty == true, "node \(member.id)")
            }
            await probe.close()
        }
    }

    @Test("a subscription whose session expires is removed (a client that is gone)")
    func expiry() async throws {
        try await TestNodeCluster.with(3, tune: { $0.sessions.sessionTimeoutMillis = 300 }) { cluster in
            let leader = try await cluster.waitForLeader()
            let gone = cluster.client()
            let subscription = try await gone.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: nil)
            let node = try #require(cluster.member(leader).node)
            #expect(await node.subscriptions()[subscription.raw.id] != nil)
            // The client vanishes without closing; cluster time moves on with another client's writes.
            let other = cluster.client { $0.useSession = false }
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: .seconds(10))
            while clock.now < deadline, await node.subscriptions()[subscription.raw.id] != nil {
                _ = try await other.set("tick", "\(clock.now)")
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(await node.subscriptions()[subscription.raw.id] == nil)
            await other.close()
        }
    }

    @Test("a watcher resuming behind the replay buffer gets eventsLost, never a silent gap; a follower refuses")
    func eventsLostAndFollowers() async throws {
        try await TestNodeCluster.with(3, tune: { $0.subscriptionReplayEvents = 4 }) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client()
            let subscription = try await client.subscribe(TestMap.onSet, stateMachine: TestMap.id, pattern: nil)
            let id = subscription.raw.id
            for n in 0..<10 { _ = try await client.set("k", "\(n)") }
            let node = try #require(cluster.member(leader).node)
            let late = PushCollector()
            await node.watch(
                RaftWatchRequest(subscription: id, afterIndex: id, afterOrdinal: .max), writer: late.writer)
            guard case .end(let error) = late.messages.withLock({ $0.last }) else {
                Issue.record("no end message: \(late.messages.withLock { $0 })")
                return
            }
            #expect(error.code == .eventsLost)
            #expect(late.messages.withLock { $0.count } == 1)
            let follower = [NodeID(1), 2, 3].first { $0 != leader }!
            let refused = PushCollector()
            await cluster.member(follower).node?.watch(
                RaftWatchRequest(subscription: id, afterIndex: id, afterOrdinal: .max), writer: refused.writer)
            guard case .end(let notLeader) = refused.messages.withLock({ $0.last }) else {
                Issue.record("the follower did not refuse")
                return
            }
            #expect(notLeader.code == .notLeader)
            #expect(notLeader.leaderHint?.id == leader)
            await client.close()
        }
    }
}
