import BifrostRPC
import BifrostRaft
import BifrostWire
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Short timeouts, so that the suite stays fast.
private func configuration(_ change: (inout RaftClientConfiguration) -> Void = { _ in }) -> RaftClientConfiguration {
    var configuration = RaftClientConfiguration()
    configuration.attemptTimeout = .milliseconds(250)
    // Generous: the full suite runs in parallel on a 2-core machine, and in its first 20 s a task can wait over
    // 10 s to run (clean-clone CI at 922db71, on the in-process path: "open session did not complete within 10 s;
    // tried no node", so the deadline had passed before the first attempt). Only a failing run waits this long.
    configuration.deadline = .seconds(60)
    configuration.initialBackoff = .milliseconds(5)
    configuration.maxBackoff = .milliseconds(50)
    change(&configuration)
    return configuration
}

/// Runs `body` with a client of `seeds`, closing the client and its RPC client afterwards even if `body` fails.
/// `socket`: the RPC client never takes the in-process shortcut.
private func withClient(
    seeds: [String],
    socket: Bool = false,
    configure: (inout RaftClientConfiguration) -> Void = { _ in },
    _ body: (RaftClient) async throws -> Void
) async throws {
    var rpcConfiguration = RPCClientConfiguration()
    rpcConfiguration.inProcessShortcut = !socket
    rpcConfiguration.connectTimeout = .milliseconds(500)
    rpcConfiguration.keepaliveInterval = .seconds(60)
    rpcConfiguration.keepaliveTimeout = .seconds(60)
    let rpc = RPCClient(configuration: rpcConfiguration)
    let client = RaftClient(seeds: seeds, configuration: configuration(configure), rpc: rpc)
    do {
        try await body(client)
    } catch {
        await client.close()
        await rpc.shutdown()
        throw error
    }
    await client.close()
    await rpc.shutdown()
}

/// The error `body` throws, or nil.
private func raftError(_ body: () async throws -> Void) async -> RaftClientError? {
    do {
        try await body()
        return nil
    } catch let error as RaftClientError {
        return error
    } catch {
        Issue.record("expected a RaftClientError, got \(error)")
        return nil
    }
}

private let stateMachine: UInt64 = 7
private let function: UInt64 = 1

@Suite("RaftClient", .serialized)
struct RaftClientTests {
    // MARK: Discovery

    @Test("a command reaches the leader from a follower seed by following the leader hint")
    func followsLeaderHint() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(2)
            try await withClient(seeds: [cluster.address(0)]) { client in
                let result = try await client.command(stateMachine: stateMachine, function: function, argument: [42])
                #expect(result.value == [42] + Wire.encodeToBytes(result.index))
                #expect(client.leader == cluster.address(2))
                #expect(client.knownAddresses.contains(cluster.address(2)))
                let applied = cluster.received.filter { $0.function == "command" && $0.node == 2 }
                #expect(applied.count == 1)
                #expect(cluster.applyCounts.values.reduce(0, +) == 1)
            }
        }
    }

    @Test("dead seed addresses fail fast and the client moves on (real sockets)")
    func skipsDeadSeeds() async throws {
        try await withFakeCluster(nodes: 5, inProcess: false) { cluster in
            await cluster.stop(0)
            await cluster.stop(1)
            cluster.setLeader(3)
            try await withClient(seeds: cluster.addresses, socket: true, configure: { $0.attemptTimeout = .seconds(5) })
            {
                client in
                let start = ContinuousClock.now
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [1])
                let elapsed = ContinuousClock.now - start
                // Connection refused is immediate: far below one (5 s) attempt timeout per dead seed.
                #expect(elapsed < .seconds(4), "took \(elapsed)")
                #expect(client.leader == cluster.address(3))
            }
        }
    }

    @Test("cluster info gives the leader's view and teaches the client every member")
    func clusterInfoDiscoversMembers() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(2)
            try await withClient(seeds: [cluster.address(0)]) { client in
                let info = try await client.clusterInfo()
                #expect(info.role == "leader")
                #expect(info.node.address == cluster.address(2))
                #expect(Set(client.knownAddresses) == Set(cluster.addresses))
                // The seed and the old leader go away; node 1 is only known from the info reply.
                await cluster.stop(0)
                await cluster.stop(2)
                cluster.setLeader(1)
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [1])
                #expect(client.leader == cluster.address(1))
            }
        }
    }

    @Test("membership changes go to the leader")
    func membershipGoesToLeader() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(1)
            try await withClient(seeds: [cluster.address(0)]) { client in
                try await client.changeMembership(.addLearner(RaftPeer(id: 9, address: "127.0.0.1:1")))
                #expect(client.knownAddresses.contains("127.0.0.1:1"))
                let served = cluster.received.filter { $0.function == "membership" }
                #expect(served.last?.node == 1)
                #expect(served.count == 2)
            }
        }
    }

    // MARK: Failover

    @Test("concurrent commands all succeed while the leader changes and the new leader then goes down")
    func failover() async throws {
        try await withFakeCluster(nodes: 3, inProcess: false) { cluster in
            for node in 0..<3 { cluster.update(node) { $0.delay = .milliseconds(10) } }
            try await withClient(seeds: cluster.addresses, socket: true) { client in
                let workers = 5
                let perWorker = 6
                let results = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
                    for worker in 0..<workers {
                        group.addTask {
                            var values: [[UInt8]] = []
                            for command in 0..<perWorker {
                                let argument = UInt8(worker * perWorker + command)
                                values.append(
                                    try await client.command(
                                        stateMachine: stateMachine, function: function, argument: [argument]
                                    ).value)
                            }
                            return values
                        }
                    }
                    // The script runs while the workers are busy: node 0 hands over to node 1, which then dies
                    // and node 2 takes over.
                    #expect(await eventually { cluster.lastIndex >= 8 })
                    cluster.setLeader(1)
                    #expect(
                        await eventually {
                            cluster.received.filter { $0.node == 1 && $0.function == "command" }.count >= 3
                        })
                    cluster.setLeader(2)
                    await cluster.stop(1)
                    var results: [[UInt8]] = []
                    for try await values in group { results += values }
                    return results
                }
                let total = workers * perWorker
                #expect(results.count == total)
                #expect(Set(results.map { $0.first ?? 255 }) == Set((0..<total).map(UInt8.init)))
                let counts = cluster.applyCounts
                #expect(counts.count == total)
                #expect(counts.values.allSatisfy { $0 == 1 })
                #expect(cluster.received.contains { $0.node == 2 && $0.function == "command" })
                #expect(client.leader == cluster.address(2))
            }
        }
    }

    // MARK: Exactly-once

    @Test("retries reuse the sequence number; each command is applied once and returns its first result")
    func exactlyOnceUnderRetries() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            // The leader applies the first commands but loses their replies: the client must retry them.
            cluster.update(0) { $0.dropCommandReplies = 3 }
            try await withClient(seeds: cluster.addresses, configure: { $0.attemptTimeout = .milliseconds(150) }) {
                client in
                var results: [(value: [UInt8], index: UInt64)] = []
                for command in 0..<4 {
                    results.append(
                        try await client.command(
                            stateMachine: stateMachine, function: function, argument: [UInt8(command)]))
                }
                let concurrent = try await withThrowingTaskGroup(of: (value: [UInt8], index: UInt64).self) { group in
                    for command in 4..<10 {
                        group.addTask {
                            try await client.command(
                                stateMachine: stateMachine, function: function, argument: [UInt8(command)])
                        }
                    }
                    var all: [(value: [UInt8], index: UInt64)] = []
                    for try await result in group { all.append(result) }
                    return all
                }
                results += concurrent
                let session = try #require(client.sessionID)

                // Applied once each, sequence numbers 1...10 without gaps, in one session.
                let counts = cluster.applyCounts
                #expect(
                    Set(counts.keys) == Set((1...10).map { FakeRaftCluster.Applied(session: session, sequence: $0) }))
                #expect(counts.values.allSatisfy { $0 == 1 })
                // Every result is the first one the leader computed (a re-application would have a new index).
                for sequence in UInt64(1)...10 {
                    let first = try #require(cluster.firstResult(session: session, sequence: sequence))
                    #expect(results.contains { $0.value == first })
                }
                // The retries happened, with the same numbers.
                let commands = cluster.received.filter { $0.function == "command" }
                let perSequence = Dictionary(grouping: commands, by: \.sequence)
                #expect(perSequence.values.filter { $0.count > 1 }.count >= 3)
                #expect(commands.allSatisfy { $0.session == session && $0.acknowledged < $0.sequence })
                // `acknowledged` advances: sequential command k carries k - 1.
                for sequence in UInt64(1)...4 {
                    #expect(perSequence[sequence]?.allSatisfy { $0.acknowledged == sequence - 1 } == true)
                }
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [99])
                #expect(cluster.received.last { $0.function == "command" }?.acknowledged == 10)
                #expect(cluster.openedSessions == 1)
            }
        }
    }

    @Test("without a session a command whose reply was lost is not retried (it could apply twice)")
    func noSessionDoesNotRetryAmbiguousFailures() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            try await withClient(
                seeds: cluster.addresses,
                configure: {
                    $0.useSession = false
                    $0.attemptTimeout = .milliseconds(150)
                }
            ) { client in
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [1])
                cluster.update(0) { $0.dropCommandReplies = 1 }
                let error = await raftError {
                    _ = try await client.command(stateMachine: stateMachine, function: function, argument: [2])
                }
                #expect(error?.code == .timeout)
                let commands = cluster.received.filter { $0.function == "command" }
                #expect(commands.count == 2)
                #expect(commands.allSatisfy { $0.session == 0 && $0.sequence == 0 && $0.acknowledged == 0 })
                #expect(cluster.openedSessions == 0)
                #expect(client.sessionID == nil)
            }
        }
    }

    @Test("sessionExpired surfaces, and the next command opens a new session")
    func sessionExpired() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            try await withClient(seeds: cluster.addresses) { client in
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [1])
                let first = try #require(client.sessionID)
                cluster.expire(session: first)
                let error = await raftError {
                    _ = try await client.command(stateMachine: stateMachine, function: function, argument: [2])
                }
                #expect(error?.code == .sessionExpired)
                #expect(client.sessionID == nil)
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [3])
                let second = try #require(client.sessionID)
                #expect(second != first)
                #expect(cluster.openedSessions == 2)
                let last = cluster.received.last { $0.function == "command" }
                #expect(last?.session == second && last?.sequence == 1)
            }
        }
    }

    // MARK: Deadlines and cancellation

    @Test("with no leader anywhere a command fails at the deadline with a clear error, after bounded retries")
    func deadlineWithoutLeader() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(nil)
            // 1 s: the full suite runs in parallel on 2 cores, where a task can wait hundreds of milliseconds to run
            // (clean-clone CI at 63e5316 saw 2 attempts within a 500 ms deadline).
            try await withClient(seeds: cluster.addresses, configure: { $0.deadline = .seconds(1) }) { client in
                let start = ContinuousClock.now
                let error = await raftError {
                    _ = try await client.command(stateMachine: stateMachine, function: function, argument: [1])
                }
                let elapsed = ContinuousClock.now - start
                #expect(error?.code == .timeout)
                #expect(error?.message.contains("noLeader") == true, "\(String(describing: error))")
                #expect(error?.message.contains(cluster.address(0)) == true)
                #expect(elapsed >= .milliseconds(950) && elapsed < .milliseconds(2000), "took \(elapsed)")
                // Retried with backoff: more than one round, but no busy loop.
                let attempts = cluster.received.count
                #expect(attempts > 3 && attempts < 150, "\(attempts) attempts")
            }
        }
    }

    @Test("cancelling the calling task ends the operation promptly")
    func cancellation() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            try await withClient(seeds: cluster.addresses, configure: { $0.attemptTimeout = .seconds(10) }) { client in
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [1])
                cluster.update(0) { $0.delay = .seconds(10) }
                let before = cluster.received.count
                let task = Task {
                    try await client.command(stateMachine: stateMachine, function: function, argument: [2]).index
                }
                #expect(await eventually { cluster.received.count > before })
                let start = ContinuousClock.now
                task.cancel()
                let result = await task.result
                let elapsed = ContinuousClock.now - start
                #expect(elapsed < .milliseconds(500), "took \(elapsed)")
                guard case .failure(let error as RaftClientError) = result else {
                    Issue.record("a cancelled command did not fail with a RaftClientError: \(result)")
                    return
                }
                #expect(error.message.contains("cancelled"))
                cluster.update(0) { $0.delay = .zero }
            }
        }
    }

    // MARK: Reads

    @Test("sequential reads never go backwards: nodes that are behind are skipped")
    func sequentialReadsNeverGoBackwards() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            try await withClient(seeds: cluster.addresses) { client in
                for command in 0..<5 {
                    _ = try await client.command(
                        stateMachine: stateMachine, function: function, argument: [UInt8(command)])
                }
                let seen = client.highestSeenIndex
                #expect(seen == cluster.lastIndex)
                cluster.update(1) { $0.appliedIndex = 2 }  // answers staleRead
                cluster.update(2) {  // answers at its old index
                    $0.appliedIndex = 1
                    $0.ignoresMinIndex = true
                }
                var previous = seen
                for read in 0..<12 {
                    let result = try await client.query(
                        stateMachine: stateMachine, function: function, argument: [UInt8(read)],
                        consistency: .sequential)
                    #expect(result.index >= previous)
                    #expect(result.value.first == 0, "served by node \(result.value.first ?? 255)")
                    #expect(client.highestSeenIndex >= previous)
                    previous = client.highestSeenIndex
                }
                let queries = cluster.received.filter { $0.function == "query" }
                #expect(queries.contains { $0.node == 1 } && queries.contains { $0.node == 2 })
                #expect(queries.allSatisfy { $0.consistency == .sequential && $0.minIndex >= seen })

                // Once node 1 catches up it serves its share again.
                cluster.update(1) { $0.appliedIndex = nil }
                var servers: Set<UInt8> = []
                for read in 0..<6 {
                    let result = try await client.query(
                        stateMachine: stateMachine, function: function, argument: [UInt8(read)],
                        consistency: .sequential)
                    #expect(result.index >= previous)
                    previous = client.highestSeenIndex
                    if let node = result.value.first { servers.insert(node) }
                }
                #expect(servers == [0, 1])
            }
        }
    }

    @Test("leader-bound queries find the leader even when the follower tried first would serve them itself")
    func queriesFindTheLeader() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(2)
            cluster.advance(by: 5)
            // As real followers do: they serve linearizable reads with a ReadIndex round through the leader.
            cluster.update(0) { $0.servesLinearizableReads = true }
            cluster.update(1) { $0.servesLinearizableReads = true }
            try await withClient(seeds: [cluster.address(0), cluster.address(1), cluster.address(2)]) { client in
                for read in 0..<6 {
                    let result = try await client.query(
                        stateMachine: stateMachine, function: function, argument: [UInt8(read)],
                        consistency: .linearizable)
                    #expect(result.value.first == 2)
                }
                #expect(client.leader == cluster.address(2))
                let queries = cluster.received.filter { $0.function == "query" }
                #expect(queries.count == 6)
                #expect(queries.allSatisfy { $0.node == 2 })
            }
        }
    }

    @Test("linearizable and lease reads are served by the leader only; stale reads by any node, unchecked")
    func readRouting() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(1)
            cluster.advance(by: 10)
            cluster.update(0) { $0.appliedIndex = 3 }
            cluster.update(2) { $0.appliedIndex = 3 }
            try await withClient(seeds: cluster.addresses) { client in
                for consistency in [ReadConsistency.linearizable, .lease] {
                    for read in 0..<4 {
                        let result = try await client.query(
                            stateMachine: stateMachine, function: function, argument: [UInt8(read)],
                            consistency: consistency)
                        #expect(result.value.first == 1)
                        #expect(result.index == 10)
                    }
                }
                #expect(client.leader == cluster.address(1))
                #expect(client.highestSeenIndex == 10)
                var servers: Set<UInt8> = []
                for read in 0..<6 {
                    let result = try await client.query(
                        stateMachine: stateMachine, function: function, argument: [UInt8(read)], consistency: .stale)
                    if let node = result.value.first { servers.insert(node) }
                }
                #expect(servers == [0, 1, 2])
                // Stale reads were answered at index 3 without a check; the seen index stays.
                #expect(client.highestSeenIndex == 10)
                let stale = cluster.received.filter { $0.consistency == .stale }
                #expect(stale.count == 6)
            }
        }
    }

    @Test("with linearizableReadsOnFollowers, linearizable reads are spread over every node; lease reads are not")
    func followerReads() async throws {
        try await withFakeCluster(nodes: 3) { cluster in
            cluster.setLeader(1)
            cluster.advance(by: 10)
            for node in 0..<3 { cluster.update(node) { $0.servesLinearizableReads = true } }
            try await withClient(seeds: cluster.addresses, configure: { $0.linearizableReadsOnFollowers = true }) {
                client in
                try await spreadReads(client)
            }
        }
    }

    private func spreadReads(_ client: RaftClient) async throws {
        var servers: Set<UInt8> = []
        for read in 0..<6 {
            let result = try await client.query(
                stateMachine: stateMachine, function: function, argument: [UInt8(read)], consistency: .linearizable)
            if let node = result.value.first { servers.insert(node) }
            #expect(result.index == 10)
        }
        #expect(servers == [0, 1, 2])
        for read in 0..<3 {
            let result = try await client.query(
                stateMachine: stateMachine, function: function, argument: [UInt8(read)], consistency: .lease)
            #expect(result.value.first == 1)
        }
    }

    // MARK: Completion handlers

    @Test("completion-handler commands take no task once leader and session are known; retries apply each once")
    func completionCommands() async throws {
        try await withFakeCluster(nodes: 3, inProcess: false) { cluster in
            try await withClient(seeds: cluster.addresses, socket: true) { client in
                /// Runs command `argument`; also says whether the completion ran on an event loop (no task).
                func command(
                    _ argument: UInt8
                ) async -> (Result<(value: [UInt8], index: UInt64), RaftClientError>, Bool) {
                    await withCheckedContinuation { continuation in
                        client.command(stateMachine: stateMachine, function: function, argument: [argument]) {
                            continuation.resume(returning: ($0, MultiThreadedEventLoopGroup.currentEventLoop != nil))
                        }
                    }
                }
                var loopCompletions = 0
                for argument in UInt8(0)..<10 {
                    let (result, onLoop) = await command(argument)
                    let reply = try result.get()
                    #expect(reply.value.first == argument)
                    if onLoop { loopCompletions += 1 }
                }
                // The first one opened the session and found the leader in a task; the rest took no task.
                #expect(loopCompletions == 9)
                // A reply-index scope around the call sees the index, though the reply came on the loop.
                let scoped = try await RaftClient.withReplyIndex { () async throws(RaftClientError) in
                    try await command(99).0.get().index
                }
                #expect(scoped.index == scoped.value && scoped.index > 0)

                // The leader applies the next command but its reply is lost: the retry loop resends the same
                // sequence number and gets the cached result.
                cluster.update(0) { $0.dropCommandReplies = 1 }
                let lost = try await command(10).0.get()
                #expect(lost.value.first == 10)

                // The leader dies; node 1 takes over.
                cluster.setLeader(1)
                await cluster.stop(0)
                for argument in UInt8(11)..<15 {
                    #expect(try await command(argument).0.get().value.first == argument)
                }
                #expect(client.leader == cluster.address(1))

                let session = try #require(client.sessionID)
                let counts = cluster.applyCounts
                #expect(
                    Set(counts.keys) == Set((1...16).map { FakeRaftCluster.Applied(session: session, sequence: $0) }))
                #expect(counts.values.allSatisfy { $0 == 1 })
                let lostSequence = cluster.received.filter { $0.function == "command" && $0.sequence == 12 }
                #expect(lostSequence.count >= 2, "the lost reply was retried")
            }
        }
    }

    @Test("completion-handler commands of one event-loop tick share a raft.commands call; failures retry each")
    func batchedCommands() async throws {
        try await withFakeCluster(nodes: 3, inProcess: false) { cluster in
            try await withClient(seeds: cluster.addresses, socket: true) { client in
                /// Issues commands `arguments` in one task on an event loop, so in one tick; returns their results.
                func burst(_ arguments: [UInt8]) async -> [Result<(value: [UInt8], index: UInt64), RaftClientError>?] {
                    let results = Mutex(
                        [Result<(value: [UInt8], index: UInt64), RaftClientError>?](
                            repeating: nil, count: arguments.count))
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let missing = Atomic(arguments.count)
                        MultiThreadedEventLoopGroup.singleton.next().execute {
                            for (position, argument) in arguments.enumerated() {
                                client.command(stateMachine: stateMachine, function: function, argument: [argument]) {
                                    result in
                                    results.withLock { $0[position] = result }
                                    if missing.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                                        continuation.resume()
                                    }
                                }
                            }
                        }
                    }
                    return results.withLock { $0 }
                }
                func batchedSequences(on node: Int) -> [UInt64] {
                    cluster.received.filter { $0.node == node && $0.function == "commands" }.map(\.sequence)
                }
                // The first command opens the session and finds the leader.
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [0])
                let first = await burst(Array(1...8))
                for (argument, result) in zip(UInt8(1)...8, first) {
                    #expect(try result?.get().value.first == argument)
                }
                // All eight went to the leader in one call, in the order they were issued.
                #expect(batchedSequences(on: 0) == Array(2...9))

                // The leader's replies to a batch are lost: the batch times out and each command is retried with its
                // sequence number, and answered from the session's cache.
                cluster.update(0) { $0.dropCommandReplies = 1 }
                let lost = await burst([20, 21, 22])
                #expect(lost.map { try? $0?.get().value.first } == [20, 21, 22])

                // The client still believes in node 0, which now redirects: each command of the batch follows the
                // hint on its own.
                cluster.setLeader(2)
                let redirected = await burst([30, 31, 32, 33])
                #expect(redirected.map { try? $0?.get().value.first } == [30, 31, 32, 33])
                #expect(batchedSequences(on: 0).suffix(4) == [13, 14, 15, 16])

                let session = try #require(client.sessionID)
                let counts = cluster.applyCounts
                #expect(
                    Set(counts.keys) == Set((1...16).map { FakeRaftCluster.Applied(session: session, sequence: $0) }))
                #expect(counts.values.allSatisfy { $0 == 1 }, "every command applied once: \(counts)")
            }
        }
    }

    @Test("completion-handler queries go where the async ones go, and on to the new leader after a failover")
    func completionQueries() async throws {
        try await withFakeCluster(nodes: 3, inProcess: false) { cluster in
            try await withClient(seeds: cluster.addresses, socket: true) { client in
                func query(
                    _ argument: UInt8, _ consistency: ReadConsistency
                ) async -> Result<(value: [UInt8], index: UInt64), RaftClientError> {
                    await withCheckedContinuation { continuation in
                        client.query(
                            stateMachine: stateMachine, function: function, argument: [argument],
                            consistency: consistency
                        ) { continuation.resume(returning: $0) }
                    }
                }
                _ = try await client.command(stateMachine: stateMachine, function: function, argument: [0])
                for argument in UInt8(0)..<5 {
                    // The value names the serving node: the leader, 0.
                    #expect(try await query(argument, .linearizable).get().value == [0, argument])
                }
                cluster.setLeader(2)
                await cluster.stop(0)
                #expect(try await query(9, .lease).get().value == [2, 9])
                #expect(try await query(9, .linearizable).get().value == [2, 9])
            }
        }
    }
}
