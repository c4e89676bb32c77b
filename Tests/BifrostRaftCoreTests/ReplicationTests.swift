import BifrostRaftCore
import BifrostTestKit
import Testing

@Suite("Replication and commit (§5.3, §5.4.2)")
struct ReplicationTests {
    @Test("a follower rejects an append whose previous entry does not match, with a conflict hint")
    func followerRejectsMismatchedPrevious() {
        var core = makeCore(1, terms: [1, 1, 1], term: 1)
        core.step(message(2, 1, term: 2, .append(AppendRequest(prevIndex: 3, prevTerm: 2, entries: [], commit: 0))))
        let reply = core.cycle().messages
        #expect(
            reply.map(\.body) == [.appendResponse(AppendResponse(rejected: true, index: 3, hintIndex: 3, hintTerm: 1))])

        core.step(message(2, 1, term: 2, .append(AppendRequest(prevIndex: 7, prevTerm: 2, entries: [], commit: 0))))
        #expect(
            core.cycle().messages.map(\.body) == [
                .appendResponse(AppendResponse(rejected: true, index: 7, hintIndex: 3, hintTerm: 1))
            ]
        )
    }

    @Test("a follower replaces conflicting entries and keeps matching ones")
    func followerTruncatesConflicts() {
        var core = makeCore(1, terms: [1, 1, 2, 2], term: 2)
        let request = AppendRequest(prevIndex: 2, prevTerm: 1, entries: entries([(3, 3)]), commit: 0)
        core.step(message(2, 1, term: 3, .append(request)))
        let ready = core.cycle()
        #expect(ready.entries.map(\.index) == [3])
        #expect(core.lastIndex == 3)
        #expect(core.term(at: 3) == 3)
        #expect(core.storage.lastIndex == 3)
        #expect(ready.messages.map(\.body) == [.appendResponse(AppendResponse(rejected: false, index: 3))])
        // A stale, shorter duplicate does not truncate anything.
        core.step(
            message(
                2, 1, term: 3, .append(AppendRequest(prevIndex: 1, prevTerm: 1, entries: entries([(2, 1)]), commit: 0)))
        )
        #expect(core.lastIndex == 3)
    }

    @Test("fast backtracking: a diverged follower is found in a few round trips, not one per entry")
    func fastBacktracking() throws {
        var settings = paperSettings
        settings.maxSizePerMessage = 1 << 20
        var cluster = RaftTestCluster(voters: 3, settings: settings)
        // Node 1 and 3: five entries of term 1, then fifty of term 3. Node 2: five of term 1, then fifty of term 2.
        let leaderTerms: [UInt64] = Array(repeating: 1, count: 5) + Array(repeating: 3, count: 50)
        let followerTerms: [UInt64] = Array(repeating: 1, count: 5) + Array(repeating: 2, count: 50)
        for (id, terms) in [(NodeID(1), leaderTerms), (2, followerTerms), (3, leaderTerms)] {
            cluster.crash(id)
            var disk = MemoryRaftStorage(configuration: Configuration(voters: [1, 2, 3]))
            disk.append(terms.enumerated().map { Entry(index: UInt64($0.offset + 1), term: $0.element) })
            disk.hardState = HardState(term: 3, vote: noNode, commit: 5)
            cluster.disks[id] = disk
            cluster.restart(id)
        }
        cluster.campaign(1)
        #expect(cluster.leader == 1)
        let rejections = cluster.delivered.filter {
            if case .appendResponse(let r) = $0.body, r.rejected, $0.from == 2 { return true }
            return false
        }
        #expect(rejections.count <= 2)
        #expect(cluster.cores[2]!.lastIndex == cluster.cores[1]!.lastIndex)
        #expect(cluster.cores[2]!.term(at: 30) == 3)
        #expect(cluster.cores[2]!.commitIndex == cluster.cores[1]!.lastIndex)
    }

    @Test("Figure 8: a leader commits an entry from an earlier term only by committing one from its own term")
    func leaderCommitsOnlyCurrentTermEntries() {
        // S1 was leader of term 2 and replicated index 2 to nobody; it is now elected for term 4.
        var core = makeCore(1, voters: [1, 2, 3, 4, 5], terms: [1, 2], term: 3, commit: 1)
        core.campaign()
        core.step(message(2, 1, term: 4, .voteResponse(granted: true, preVote: false)))
        core.step(message(3, 1, term: 4, .voteResponse(granted: true, preVote: false)))
        #expect(core.role == .leader)
        #expect(core.term == 4)
        _ = core.cycle()  // the no-op (index 3, term 4) is durable on the leader
        // Index 2 (term 2) now sits on a majority (S1, S2, S3): it must not be committed by counting.
        core.step(message(2, 1, term: 4, .appendResponse(AppendResponse(rejected: false, index: 2))))
        core.step(message(3, 1, term: 4, .appendResponse(AppendResponse(rejected: false, index: 2))))
        #expect(core.commitIndex == 1)
        // Once the term-4 no-op is on a majority, it and everything before it commit.
        core.step(message(2, 1, term: 4, .appendResponse(AppendResponse(rejected: false, index: 3))))
        #expect(core.commitIndex == 1)
        core.step(message(3, 1, term: 4, .appendResponse(AppendResponse(rejected: false, index: 3))))
        #expect(core.commitIndex == 3)
    }

    @Test("Figure 8 end to end: an old-term entry never committed is carried forward only with a current-term entry")
    func figureEightEndToEnd() throws {
        var cluster = RaftTestCluster(voters: 5, settings: paperSettings)
        cluster.campaign(1)
        #expect(cluster.leader == 1)
        // S1 appends an entry in its term but only S2 receives it.
        cluster.isolated = [3, 4, 5]
        try cluster.propose([[0xA]], at: 1)
        let index = cluster.cores[1]!.lastIndex
        #expect(cluster.cores[2]!.term(at: index) == cluster.cores[1]!.term)
        #expect(cluster.cores[1]!.commitIndex < index)
        cluster.crash(1)
        // S5 wins with votes from S3 and S4, but its own entries reach nobody.
        cluster.isolated = [1, 2]
        cluster.cores[5]!.campaign()
        for _ in 0..<4 {
            for m in cluster.takeMessages() {
                if case .append = m.body { continue }
                cluster.deliver(m)
            }
        }
        #expect(cluster.leader == 5)
        try cluster.cores[5]!.propose([[0xB]])
        _ = cluster.takeMessages()
        cluster.crash(5)
        // S1 campaigns again: term 2 fails (S3 and S4 voted for S5), term 3 wins with S2, S3 and S4. It carries 0xA
        // to a majority, but 0xA commits only together with the term-3 no-op.
        cluster.isolated = []
        cluster.restart(1)
        cluster.campaign(1)
        cluster.campaign(1)
        #expect(cluster.leader == 1)
        #expect(cluster.cores[1]!.term == 3)
        cluster.tick(3)
        let reference = cluster.appliedPayloads(1)
        #expect(reference == [[0xA]])
        for id in [NodeID(2), 3, 4] { #expect(cluster.appliedPayloads(id) == reference) }
        // S5 comes back: its uncommitted term entries are overwritten.
        cluster.restart(5)
        cluster.tick(30)
        #expect(cluster.appliedPayloads(5) == reference)
    }

    @Test("batching: an append message carries at most maxSizePerMessage bytes; the pipeline sends several at once")
    func batchingAndPipelining() throws {
        var settings = RaftSettings()
        settings.maxSizePerMessage = 300
        var cluster = RaftTestCluster(voters: 3, settings: settings)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.cores[leader]!.propose(payloads(10, size: 100))
        let appends = cluster.takeMessages().compactMap { m -> AppendRequest? in
            if case .append(let r) = m.body, m.to != leader { return r }
            return nil
        }
        #expect(appends.count == 10)  // 5 messages of 2 entries to each follower, sent without waiting
        #expect(appends.allSatisfy { $0.entries.count <= 2 && !$0.entries.isEmpty })
    }

    @Test("flow control: at most maxInflightMessages appends (and maxInflightBytes) in flight per follower")
    func flowControl() throws {
        var settings = RaftSettings()
        settings.maxInflightMessages = 2
        settings.maxSizePerMessage = 150
        var cluster = RaftTestCluster(voters: 3, settings: settings)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let follower = cluster.ids.first { $0 != leader }!
        for round in 0..<6 { try cluster.cores[leader]!.propose(payloads(1, size: 100, tag: UInt8(round))) }
        let sent = cluster.takeMessages().filter {
            if case .append(let r) = $0.body { return $0.to == follower && !r.entries.isEmpty }
            return false
        }
        #expect(sent.count == 2)
        let progress = try #require(cluster.cores[leader]!.status.progress[follower])
        #expect(progress.state == .replicate)
        #expect(progress.inflightMessages == 2)
        // Acknowledging opens the window again; eventually everything is replicated.
        for message in sent { cluster.deliver(message) }
        cluster.stabilize()
        cluster.tick(3)
        #expect(cluster.cores[follower]!.lastIndex == cluster.cores[leader]!.lastIndex)

        var bytes = RaftSettings()
        bytes.maxInflightBytes = 250
        bytes.maxSizePerMessage = 150
        var byteCluster = RaftTestCluster(voters: 3, settings: bytes)
        let byteLeaderElected = byteCluster.electLeader()
        let byteLeader = try #require(byteLeaderElected)
        for round in 0..<6 { try byteCluster.cores[byteLeader]!.propose(payloads(1, size: 100, tag: UInt8(round))) }
        let byteSent = byteCluster.takeMessages().filter {
            if case .append(let r) = $0.body { return $0.to != byteLeader && !r.entries.isEmpty }
            return false
        }
        #expect(byteSent.count == 6)  // the third 124-byte message per follower reaches the 250-byte limit
    }

    @Test("duplicated and reordered messages are harmless")
    func duplicatesAndReordering() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        for round in 0..<5 {
            try cluster.cores[leader]!.propose(payloads(3, size: 10, tag: UInt8(round)))
            var messages = cluster.takeMessages()
            messages += messages
            messages.reverse()
            for message in messages { cluster.deliver(message) }
            let again = cluster.takeMessages()
            for message in (again + again).reversed() { cluster.deliver(message) }
        }
        cluster.tick(5)
        let reference = cluster.appliedPayloads(leader)
        #expect(reference.count == 15)
        for id in cluster.ids { #expect(cluster.appliedPayloads(id) == reference) }
    }

    @Test("messages from unknown peers, stale terms or with out-of-range indexes are dropped, never trap")
    func hostileMessagesAreDropped() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let term = cluster.cores[leader]!.term
        let follower = cluster.ids.first { $0 != leader }!
        let hostile: [RaftMessage.Body] = [
            .appendResponse(AppendResponse(rejected: false, index: 1_000_000)),
            .appendResponse(AppendResponse(rejected: true, index: 1_000_000, hintIndex: 999, hintTerm: 77)),
            .heartbeatResponse(readSequence: .max),
            .snapshotResponse(snapshotIndex: 5, nextOffset: -3, rejected: false),
            .readIndexResponse(context: [], index: 12),
            .timeoutNow,
        ]
        for body in hostile {
            cluster.cores[leader]!.step(message(99, leader, term: term, body))
            cluster.cores[leader]!.step(message(99, leader, term: 0, body))
        }
        cluster.cores[follower]!.step(
            message(
                leader, follower, term: term,
                .append(AppendRequest(prevIndex: 1 << 40, prevTerm: term, entries: [], commit: 1 << 50)))
        )
        cluster.cores[follower]!.step(
            message(leader, follower, term: term, .heartbeat(commit: 1 << 50, readSequence: 0)))
        cluster.cores[follower]!.step(
            message(
                leader,
                follower,
                term: term,
                .snapshot(
                    SnapshotChunk(metadata: SnapshotMetadata(index: 3, term: 1), offset: 77, data: [1], done: true))
            )
        )
        // Extreme values that would overflow index arithmetic.
        let extreme: [RaftMessage.Body] = [
            .append(AppendRequest(prevIndex: .max, prevTerm: .max, entries: entries([(5, 1)]), commit: .max)),
            .append(AppendRequest(prevIndex: 0, prevTerm: 0, entries: entries([(9, 1), (3, 1)]), commit: 0)),
            .snapshot(
                SnapshotChunk(metadata: SnapshotMetadata(index: .max, term: 1), offset: .max, data: [1], done: true)),
            .snapshot(
                SnapshotChunk(metadata: SnapshotMetadata(index: .max, term: 1), offset: 0, data: [1], done: true)),
            .snapshot(SnapshotChunk(metadata: SnapshotMetadata(index: 2, term: 1), offset: -5, data: [1], done: false)),
        ]
        for body in extreme { cluster.cores[follower]!.step(message(leader, follower, term: term, body)) }
        for body: RaftMessage.Body in [
            .appendResponse(AppendResponse(rejected: true, index: 0, hintIndex: .max, hintTerm: 0)),
            .appendResponse(AppendResponse(rejected: true, index: .max, hintIndex: .max, hintTerm: .max)),
            .appendResponse(AppendResponse(rejected: false, index: .max)),
            .snapshotResponse(snapshotIndex: .max, nextOffset: .min, rejected: false),
            .vote(VoteRequest(lastIndex: .max, lastTerm: .max, preVote: true, transfer: false)),
        ] {
            cluster.cores[leader]!.step(message(follower, leader, term: term, body))
        }
        #expect(cluster.cores[follower]!.commitIndex <= cluster.cores[follower]!.lastIndex)
        #expect(cluster.cores[leader]!.role == .leader)
        try cluster.propose([[1]], at: leader)
        cluster.tick(3)
        #expect(cluster.appliedPayloads(follower) == [[1]])
    }

    @Test("errors are typed: a follower rejects a proposal with notLeader and a leader hint")
    func proposeOnFollowerFails() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let follower = cluster.ids.first { $0 != leader }!
        let error = #expect(throws: RaftError.self) { try cluster.cores[follower]!.propose([[1]]) }
        #expect(error?.code == .notLeader)
        #expect(error?.leaderHint == leader)
    }

    @Test("status reports role, term, leader, commit, applied and per-follower progress")
    func statusReportsProgress() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.propose(payloads(4), at: leader)
        cluster.tick(2)
        let status = cluster.cores[leader]!.status
        #expect(status.role == .leader)
        #expect(status.leader == leader)
        #expect(status.commit == status.lastIndex)
        #expect(status.applied == status.commit)
        #expect(status.progress.count == 2)
        for (_, progress) in status.progress {
            #expect(progress.match == status.lastIndex)
            #expect(progress.next == status.lastIndex + 1)
            #expect(progress.state == .replicate)
            #expect(progress.inflightMessages == 0)
        }
    }

    @Test("a crashed cluster restarts from persisted state and keeps every committed entry")
    func restartKeepsCommittedEntries() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.propose(payloads(5, size: 8), at: leader)
        cluster.tick(2)
        let before = cluster.appliedPayloads(leader)
        for id in [NodeID(1), 2, 3] { cluster.crash(id) }
        for id in [NodeID(1), 2, 3] {
            cluster.applied[id] = []
            cluster.restart(id)
        }
        let newLeaderElected = cluster.electLeader()
        let newLeader = try #require(newLeaderElected)
        cluster.tick(2)
        #expect(cluster.appliedPayloads(newLeader) == before)
    }
}

@Suite("Shell contract")
struct ShellContractTests {
    @Test("steps between ready() and advance(): a batch overtaken by a conflicting append is not marked stable")
    func readyOvertakenByConflict() {
        var core = makeCore(1, term: 1)
        core.step(
            message(
                2, 1, term: 1,
                .append(
                    AppendRequest(prevIndex: 0, prevTerm: 0, entries: entries([(1, 1), (2, 1), (3, 1)]), commit: 0))))
        let first = core.ready()
        #expect(first.entries.map(\.index) == [1, 2, 3])
        // Before the shell persists the batch, a new leader replaces entries 2 and 3.
        core.step(
            message(
                3, 1, term: 2,
                .append(AppendRequest(prevIndex: 1, prevTerm: 1, entries: entries([(2, 2), (3, 2)]), commit: 0))))
        core.storage.append(first.entries)
        if let hardState = first.hardState { core.storage.hardState = hardState }
        core.advance(first)
        #expect(core.hasReady)
        let second = core.ready()
        #expect(second.entries.map(\.term) == [2, 2])
        core.storage.append(second.entries)
        core.advance(second)
        #expect(core.storage.term(at: 3) == 2)
        #expect(core.term(at: 2) == 2)
        #expect(!core.hasReady)
    }

    @Test("a crash before persisting loses the batch but nothing that was acknowledged")
    func crashBeforePersist() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let follower = cluster.ids.first { $0 != leader }!
        try cluster.cores[leader]!.propose([[1]])
        cluster.processReady()
        for m in cluster.outbox where m.to == follower { cluster.deliver(m) }
        cluster.outbox.removeAll { $0.to == follower }
        // The follower holds the entry in memory only: its acknowledgement has not been produced yet.
        let unpersisted = cluster.cores[follower]!.lastIndex
        #expect(cluster.cores[follower]!.storage.lastIndex < unpersisted)
        cluster.crash(follower)
        #expect(cluster.disks[follower]!.lastIndex < unpersisted)
        cluster.restart(follower)
        cluster.tick(5)
        #expect(cluster.appliedPayloads(follower) == [[1]])
    }
}

@Suite("Which messages wait for the disk (parallel leader write, §10.2.1)")
struct PersistenceOrderingTests {
    @Test("a leader's appends and heartbeats leave before its own write; acknowledgements and votes wait")
    func classification() {
        let append = RaftMessage.Body.append(AppendRequest(prevIndex: 1, prevTerm: 1, entries: [], commit: 1))
        let early: [RaftMessage.Body] = [
            append, .heartbeat(commit: 1, readSequence: 2), .heartbeatResponse(readSequence: 2),
            .appendResponse(AppendResponse(rejected: true, index: 3, hintIndex: 1, hintTerm: 1)),
            .vote(VoteRequest(lastIndex: 1, lastTerm: 1, preVote: true, transfer: false)),
            .voteResponse(granted: true, preVote: true), .voteResponse(granted: false, preVote: false),
            .timeoutNow, .readIndex(context: [1]), .readIndexResponse(context: [1], index: 4),
        ]
        let late: [RaftMessage.Body] = [
            .vote(VoteRequest(lastIndex: 1, lastTerm: 1, preVote: false, transfer: false)),
            .voteResponse(granted: true, preVote: false),
            .appendResponse(AppendResponse(rejected: false, index: 3)),
            .snapshotResponse(snapshotIndex: 5, nextOffset: 0, rejected: false),
        ]
        for body in early { #expect(!RaftMessage(from: 1, to: 2, term: 1, body: body).requiresPersistence) }
        for body in late { #expect(RaftMessage(from: 1, to: 2, term: 1, body: body).requiresPersistence) }
    }

    @Test("a commit that leaves entries in flight reaches followers with the next append; the last one is sent alone")
    func commitRidesWithTheNextAppend() throws {
        var cluster = RaftTestCluster(voters: 3)
        let elected = cluster.electLeader()
        let leader = try #require(elected)
        cluster.tick(2)
        var core = try #require(cluster.cores[leader])
        let followers = cluster.ids.filter { $0 != leader }.sorted()
        let first = try core.propose([[1]]).lowerBound
        _ = core.cycle()
        let second = try core.propose([[2]]).lowerBound
        _ = core.cycle()
        func acknowledge(_ index: UInt64, from follower: NodeID) -> [RaftMessage] {
            core.step(
                RaftMessage(
                    from: follower, to: leader, term: core.term,
                    body: .appendResponse(AppendResponse(rejected: false, index: index))))
            return core.cycle().messages
        }
        func commitOnlyAppends(_ messages: [RaftMessage]) -> [NodeID] {
            messages.compactMap { message in
                if case .append(let request) = message.body, request.entries.isEmpty { return message.to }
                return nil
            }
        }
        // The first entry commits while the second is in flight: no follower gets an append of its own for that.
        #expect(commitOnlyAppends(acknowledge(first, from: followers[0])).isEmpty)
        #expect(core.commitIndex == first)
        // A third entry carries the commit index to both followers.
        let third = try core.propose([[3]]).lowerBound
        let appends = core.cycle().messages.compactMap { message -> AppendRequest? in
            if case .append(let request) = message.body { return request }
            return nil
        }
        #expect(appends.count == 2 && appends.allSatisfy { $0.commit == first && $0.entries.map(\.index) == [third] })
        // The last entry commits: nothing is left in flight, so each follower hears of it at once.
        let last = acknowledge(third, from: followers[0])
        #expect(core.commitIndex == third && second < third)
        #expect(commitOnlyAppends(last).sorted() == followers)
    }

    @Test("a leader's new entries go out in the same batch that persists them, and count only once durable")
    func leaderSendsBeforePersisting() throws {
        var cluster = RaftTestCluster(voters: 3)
        let elected = cluster.electLeader()
        let leader = try #require(elected)
        cluster.tick(2)
        var core = try #require(cluster.cores[leader])
        let commitBefore = core.commitIndex
        let range = try core.propose([[7]])
        let ready = core.ready()
        #expect(ready.entries.map(\.index) == [range.lowerBound])
        let appends = ready.messages.filter { message in
            if case .append(let request) = message.body {
                return request.entries.contains { $0.index == range.lowerBound }
            }
            return false
        }
        #expect(appends.count == 2)
        #expect(appends.allSatisfy { !$0.requiresPersistence })
        // Both followers acknowledge, but the leader's own entry is not durable yet: with 3 voters, two durable
        // copies are a quorum, so the entry commits on the followers' acks alone.
        for append in appends {
            core.step(
                RaftMessage(
                    from: append.to, to: leader, term: core.term,
                    body: .appendResponse(AppendResponse(rejected: false, index: range.lowerBound))))
        }
        #expect(core.commitIndex == range.lowerBound)
        #expect(core.commitIndex > commitBefore)
    }
}
