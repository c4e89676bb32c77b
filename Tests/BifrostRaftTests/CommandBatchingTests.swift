import BifrostRPC
import BifrostRaftCore
import BifrostWire
import NIOCore
import Testing

@testable import BifrostRaft

/// `raft.commands`: the client's grouping of commands into calls, and a real node's answers to a batch.
@Suite("Command batching")
struct CommandBatchingTests {
    private static let leader = RPCAddress(host: "127.0.0.1", port: 1)
    private static let follower = RPCAddress(host: "127.0.0.1", port: 2)

    private static func item(_ address: RPCAddress, _ sequence: UInt64, bytes: Int = 1) -> RaftCommandBatcher.Item {
        RaftCommandBatcher.Item(
            address: address,
            request: RaftCommandRequest(
                session: 1, sequence: sequence, acknowledged: 0, stateMachine: 1, function: 1,
                argument: Array(repeating: 0, count: bytes)),
            timeout: .seconds(1)
        ) { _ in }
    }

    private static func sequences(_ batches: [[RaftCommandBatcher.Item]]) -> [[UInt64]] {
        batches.map { $0.map(\.request.sequence) }
    }

    @Test("commands are grouped per node, in the order they were issued")
    func groupsPerNode() {
        let items = [
            Self.item(Self.leader, 1), Self.item(Self.follower, 2), Self.item(Self.leader, 3),
            Self.item(Self.leader, 4), Self.item(Self.follower, 5),
        ]
        let batches = RaftCommandBatcher.split(items)
        #expect(Self.sequences(batches) == [[1, 3, 4], [2, 5]])
        #expect(batches.allSatisfy { batch in batch.allSatisfy { $0.address == batch[0].address } })
        #expect(RaftCommandBatcher.split([]).isEmpty)
        // One node within the limits: one batch, as issued.
        #expect(
            Self.sequences(RaftCommandBatcher.split((1...5).map { Self.item(Self.leader, $0) })) == [[1, 2, 3, 4, 5]])
    }

    @Test("a batch holds at most maxBatchCount commands and maxBatchBytes of arguments, unless it holds one")
    func splitsAtTheLimits() {
        let count = RaftCommandRequest.maxBatchCount
        let many = (1...UInt64(count + 3)).map { Self.item(Self.leader, $0) }
        #expect(RaftCommandBatcher.split(many).map(\.count) == [count, 3])

        let half = RaftCommandBatcher.maxBatchBytes / 2
        let large = [
            Self.item(Self.leader, 1, bytes: half), Self.item(Self.leader, 2, bytes: half),
            Self.item(Self.leader, 3, bytes: 1), Self.item(Self.leader, 4, bytes: 3 * half),
            Self.item(Self.leader, 5, bytes: 1),
        ]
        // 1 and 2 fill a batch exactly; 3 starts the next; 4 alone is over the limit; 5 follows it.
        #expect(Self.sequences(RaftCommandBatcher.split(large)) == [[1, 2], [3], [4], [5]])
    }

    @Test("the acknowledged mark moves over completions in any order, and ignores repeats and old numbers")
    func acknowledgedMark() async throws {
        try await withFakeCluster(nodes: 1) { cluster in
            // Generous, as RaftClientTests' clients: early in the parallel suite a task can wait over 10 s to run.
            var configuration = RaftClientConfiguration()
            configuration.deadline = .seconds(60)
            let client = RaftClient(seeds: cluster.addresses, configuration: configuration)
            _ = try await client.command(stateMachine: 1, function: 1, argument: [])
            let session = try #require(client.sessionID)
            #expect(client.acknowledged(in: session) == 1)
            var issued: [UInt64] = []
            for _ in 0..<5 { issued.append(try #require(client.nextSequenceAtLeader()).sequence) }
            #expect(issued == [2, 3, 4, 5, 6])
            // Completions of 2...6 arrive as 4, 6, 2, 2 (a repeat), 1 (already counted), 3, 5.
            for (sequence, mark) in [(4, 1), (6, 1), (2, 2), (2, 2), (1, 2), (3, 4), (5, 6)] as [(UInt64, UInt64)] {
                client.complete(sequence, in: session)
                #expect(client.acknowledged(in: session) == mark, "after completing \(sequence)")
            }
            // Another session's completion changes nothing.
            client.complete(7, in: session + 1)
            #expect(client.acknowledged(in: session) == 6)
            await client.close()
        }
    }

    @Test("a node answers a batch command by command, in order; bad batches get badRequest")
    func nodeAnswersBatches() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let follower: NodeID = leader == 1 ? 2 : 1
            let rpc = RPCClient()
            let service = RaftServiceID.forGroup(0)
            func call(_ node: NodeID, _ payload: ByteBuffer) async throws -> [RaftReply] {
                let address = try #require(RPCAddress(cluster.member(node).address))
                let reply = try await rpc.call(
                    address, service: service, function: RaftServiceFunction.commands, payload: payload)
                return try Wire.decode([RaftReply].self, from: reply)
            }
            func set(_ key: String, _ value: String, stateMachine: UInt64 = TestMap.id) -> RaftCommandRequest {
                RaftCommandRequest(
                    session: 0, sequence: 0, acknowledged: 0, stateMachine: stateMachine, function: TestMap.set,
                    argument: Wire.encodeToBytes([key, value]))
            }

            let batch = [
                set("a", "1"), set("b", "2"), set("c", "3", stateMachine: 999), set("a", "4"),
                RaftCommandRequest(
                    session: 0, sequence: 0, acknowledged: 0, stateMachine: TestMap.id, function: TestMap.fail,
                    argument: []),
            ]
            let replies = try await call(leader, RaftCommandRequest.encode(batch))
            try #require(replies.count == batch.count)
            guard case .ok(let first, let firstIndex) = replies[0], case .ok(_, let secondIndex) = replies[1],
                case .ok(let fourth, let fourthIndex) = replies[3]
            else {
                Issue.record("the commands to the test map failed: \(replies)")
                return
            }
            #expect(try Wire.decode(String?.self, fromBytes: first) == nil)
            // The second `a` saw the first: the batch was applied in order.
            #expect(try Wire.decode(String?.self, fromBytes: fourth) == "1")
            // Commands proposed in one loop tick share an entry, so indexes may repeat; they never go back.
            #expect(firstIndex <= secondIndex && secondIndex <= fourthIndex)
            guard case .failure(let missing) = replies[2], case .failure(let rejected) = replies[4] else {
                Issue.record("a failing command of the batch succeeded: \(replies)")
                return
            }
            #expect(missing.code == .stateMachineNotFound)
            #expect(rejected.code == .applicationError)

            let client = cluster.client()
            #expect(try await client.get("a") == "4")
            #expect(try await client.get("b") == "2")
            await client.close()

            // A follower redirects every command of the batch.
            let redirected = try await call(follower, RaftCommandRequest.encode([set("x", "1"), set("y", "2")]))
            #expect(redirected.count == 2)
            for reply in redirected {
                guard case .failure(let error) = reply else {
                    Issue.record("a follower took a command: \(reply)")
                    continue
                }
                #expect(error.code == .notLeader)
            }

            // Empty and oversized batches, and junk, are refused with badRequest; the node stays up.
            let oversized = Array(repeating: set("z", "1"), count: RaftCommandRequest.maxBatchCount + 1)
            for payload in [
                RaftCommandRequest.encode([]), RaftCommandRequest.encode(oversized), ByteBuffer(bytes: [5, 1, 2]),
            ] {
                await #expect {
                    _ = try await call(leader, payload)
                } throws: { error in
                    (error as? RPCError)?.code == .badRequest
                }
            }
            #expect(try await cluster.waitForLeader() == leader)
            await rpc.shutdown()
        }
    }
}
