import BifrostRaftCore
import BifrostTestKit
import Testing

@Suite("Reads (§6.4 ReadIndex, leases)")
struct ReadTests {
    @Test("ReadIndex waits for the new leader's no-op to commit, then for a heartbeat round")
    func readIndexAfterNoopCommit() throws {
        var cluster = RaftTestCluster(voters: 3, settings: paperSettings)
        cluster.cores[1]!.campaign()
        // Deliver the vote round only: node 1 becomes leader, its no-op is not replicated yet.
        for m in cluster.takeMessages() { cluster.deliver(m) }
        for m in cluster.takeMessages() where m.to == 1 { cluster.deliver(m) }
        #expect(cluster.cores[1]!.role == .leader)
        #expect(cluster.cores[1]!.commitIndex == 0)
        try cluster.cores[1]!.readIndex(context: [42])
        cluster.processReady()
        #expect(cluster.readStates[1, default: []].isEmpty)
        cluster.stabilize()
        let state = try #require(cluster.readStates[1]?.first)
        #expect(state.context == [42])
        #expect(state.index == 1)  // the no-op
        // Requests are batched: several reads share one heartbeat round.
        try cluster.cores[1]!.readIndex(context: [1])
        try cluster.cores[1]!.readIndex(context: [2])
        let round = cluster.takeMessages().filter { if case .heartbeat = $0.body { return true } else { return false } }
        #expect(round.count == 2)  // one heartbeat per follower for both reads
        for m in round { cluster.deliver(m) }
        cluster.stabilize()
        #expect(cluster.readStates[1]!.map(\.context) == [[42], [1], [2]])
    }

    @Test("a follower forwards ReadIndex to the leader and gets the index back")
    func followerReadIndex() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.propose(payloads(2), at: leader)
        let follower = cluster.ids.first { $0 != leader }!
        try cluster.cores[follower]!.readIndex(context: [7])
        cluster.stabilize()
        let state = try #require(cluster.readStates[follower]?.first)
        #expect(state.context == [7])
        #expect(state.index == cluster.cores[leader]!.commitIndex)
    }

    @Test("a leader cut off from the majority cannot confirm a ReadIndex")
    func isolatedLeaderCannotServeReads() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.isolated = [leader]
        try cluster.cores[leader]!.readIndex(context: [9])
        cluster.tick(3)
        #expect(cluster.readStates[leader, default: []].isEmpty)
    }

    @Test("lease reads (opt-in) are served without a round while the lease holds, not after it lapses")
    func leaseReads() throws {
        var settings = RaftSettings()
        settings.readOnlyOption = .leaseBased
        var cluster = RaftTestCluster(voters: 3, settings: settings)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.tick(2)
        try cluster.cores[leader]!.readIndex(context: [1])
        let ready = cluster.cores[leader]!.ready()
        #expect(ready.readStates.map(\.context) == [[1]])
        #expect(!ready.messages.contains { if case .heartbeat = $0.body { return true } else { return false } })
        cluster.cores[leader]!.advance(ready)
        cluster.isolated = [leader]
        cluster.tick(settings.electionTick - 1)
        if cluster.cores[leader]!.role == .leader {
            try cluster.cores[leader]!.readIndex(context: [2])
            cluster.processReady()
            #expect(!cluster.readStates[leader, default: []].contains { $0.context == [2] })
        }
    }

    @Test("a per-request lease read index: only on a leader with a fresh lease, whatever the read option")
    func leaseReadIndexPerRequest() throws {
        var cluster = RaftTestCluster(voters: 3)  // readOnlyOption stays .safe
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.tick(2)
        let commit = cluster.cores[leader]!.commitIndex
        #expect(cluster.cores[leader]!.leaseReadIndex == commit)
        for id in cluster.ids where id != leader { #expect(cluster.cores[id]!.leaseReadIndex == nil) }
        // Cut off from its followers, the leader's lease lapses before anyone else can be elected.
        cluster.isolated = [leader]
        cluster.tick(RaftSettings().electionTick - 1)
        #expect(cluster.cores[leader]?.leaseReadIndex == nil)
    }
}

@Suite("Snapshots (§7)")
struct SnapshotTests {
    @Test("a follower too far behind catches up from a chunked snapshot, then from the log")
    func snapshotInstall() throws {
        var settings = RaftSettings()
        settings.snapshotChunkBytes = 8
        var cluster = RaftTestCluster(voters: 3, settings: settings)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let lagging = cluster.ids.first { $0 != leader }!
        cluster.crash(lagging)
        try cluster.propose(payloads(20, size: 10), at: leader)
        cluster.tick(2)
        // Every running node snapshots its state machine at its applied index and compacts its log.
        for id in cluster.ids {
            let applied = cluster.cores[id]!.appliedIndex
            let meta = try #require(cluster.cores[id]!.snapshotMetadata(at: applied))
            try cluster.cores[id]!.storage.createSnapshot(meta, data: [UInt8](repeating: UInt8(applied), count: 30))
        }
        let snapshotIndex = cluster.cores[leader]!.storage.snapshotMetadata.index
        #expect(cluster.cores[leader]!.entries(from: 1, to: 2) == nil)  // compacted
        try cluster.propose(payloads(3, size: 10, tag: 9), at: leader)
        cluster.restart(lagging)
        cluster.tick(10)
        #expect(cluster.installedSnapshots[lagging]?.map(\.index) == [snapshotIndex])
        let chunks = cluster.delivered.filter {
            if case .snapshot = $0.body { return $0.to == lagging } else { return false }
        }
        #expect(chunks.count == 4)  // 30 bytes in 8-byte chunks
        #expect(cluster.cores[lagging]!.storage.snapshotData.count == 30)
        #expect(cluster.cores[lagging]!.commitIndex == cluster.cores[leader]!.commitIndex)
        #expect(cluster.appliedPayloads(lagging) == payloads(3, size: 10, tag: 9))
        #expect(cluster.cores[lagging]!.configuration == cluster.cores[leader]!.configuration)
    }

    @Test("a snapshot records the configuration in force at its index, also with a later change in the log")
    func snapshotConfiguration() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.propose(payloads(5), at: leader)
        cluster.stabilize()
        let before = cluster.cores[leader]!.appliedIndex
        // A change appended but not committed: it is the leader's configuration, not the one at `before`.
        cluster.isolated = Set(cluster.ids.filter { $0 != leader })
        try cluster.cores[leader]!.changeMembership(.addLearner(4))
        cluster.tick(2)
        #expect(cluster.cores[leader]!.configuration.learners == [4])
        #expect(cluster.cores[leader]!.appliedIndex == before)
        let early = try #require(cluster.cores[leader]!.snapshotMetadata(at: before))
        #expect(early.configuration == Configuration(voters: [1, 2, 3]))
        // Once applied, a snapshot at or after the change carries it.
        cluster.isolated = []
        cluster.add(4, storage: MemoryRaftStorage(configuration: Configuration()))
        cluster.tick(5)
        let applied = cluster.cores[leader]!.appliedIndex
        #expect(applied > before)
        let late = try #require(cluster.cores[leader]!.snapshotMetadata(at: applied))
        #expect(late.configuration == Configuration(voters: [1, 2, 3], learners: [4]))
    }

    @Test("compaction refuses a snapshot that is not applied or not in the log")
    func compactionChecks() throws {
        var cluster = RaftTestCluster(voters: 1)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        #expect(cluster.cores[leader]!.snapshotMetadata(at: 99) == nil)
        let bad = SnapshotMetadata(index: 99, term: 1, configuration: Configuration(voters: [1]))
        #expect(throws: RaftError.self) { try cluster.cores[leader]!.storage.createSnapshot(bad, data: []) }
    }
}

@Suite("Membership (§4.1 single-server changes, §4.2.1 learners, §4.2.2 leader removal)")
struct MembershipTests {
    @Test("single-server change: one uncommitted change at a time, learners catch up before promotion")
    func singleServerChange() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.propose(payloads(5), at: leader)
        try cluster.cores[leader]!.changeMembership(.addLearner(4))
        // The configuration takes effect when appended, before it commits.
        #expect(cluster.cores[leader]!.configuration.learners == [4])
        let second = #expect(throws: RaftError.self) { try cluster.cores[leader]!.changeMembership(.addLearner(5)) }
        #expect(second?.code == .configurationChangeInProgress)
        cluster.add(4, storage: MemoryRaftStorage(configuration: Configuration()))
        cluster.isolated = [4]
        cluster.stabilize()
        // Not caught up: promotion is refused.
        let early = #expect(throws: RaftError.self) { try cluster.cores[leader]!.changeMembership(.promote(4)) }
        #expect(early?.code == .learnerNotCaughtUp)
        cluster.isolated = []
        cluster.tick(5)
        #expect(cluster.cores[4]!.role == .follower)
        #expect(cluster.appliedPayloads(4) == cluster.appliedPayloads(leader))
        try cluster.cores[leader]!.changeMembership(.promote(4))
        cluster.tick(3)
        for id in cluster.ids { #expect(cluster.cores[id]!.configuration.voters == [1, 2, 3, 4]) }
        // The new voter counts: with two of four down, nothing commits; with one down, it does.
        let others = cluster.ids.filter { $0 != leader }
        cluster.isolated = [others[0], others[1]]
        try cluster.propose([[1]], at: leader)
        #expect(cluster.cores[leader]!.commitIndex < cluster.cores[leader]!.lastIndex)
        cluster.isolated = [others[0]]
        cluster.tick(3)
        #expect(cluster.cores[leader]!.commitIndex == cluster.cores[leader]!.lastIndex)
    }

    @Test("removing the leader: it keeps leading until the change commits, then steps down and stays quiet")
    func leaderRemoval() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.cores[leader]!.changeMembership(.remove(leader))
        #expect(cluster.cores[leader]!.role == .leader)
        #expect(!cluster.cores[leader]!.configuration.voters.contains(leader))
        cluster.stabilize()
        #expect(cluster.cores[leader]!.role == .follower)
        cluster.tick(40)
        let nextElected = cluster.leader
        let next = try #require(nextElected)
        #expect(next != leader)
        #expect(cluster.cores[next]!.configuration.voters == Set(cluster.ids.filter { $0 != leader }))
        try cluster.propose([[5]], at: next)
        cluster.tick(60)
        #expect(cluster.leader == next)  // the removed node never disrupted the new leader
        #expect(cluster.cores[leader]!.role == .follower)
        #expect(cluster.appliedPayloads(next).last == [5])
    }

    @Test("removing a follower shrinks the quorum")
    func followerRemoval() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let others = cluster.ids.filter { $0 != leader }
        try cluster.cores[leader]!.changeMembership(.remove(others[0]))
        cluster.tick(2)
        cluster.crash(others[0])
        try cluster.propose([[3]], at: leader)
        cluster.tick(2)
        #expect(cluster.appliedPayloads(leader) == [[3]])
        #expect(cluster.appliedPayloads(others[1]) == [[3]])
    }
}

@Suite("Leadership transfer (§3.10)")
struct TransferTests {
    @Test("transfer to a caught-up follower via TimeoutNow")
    func transferLeadership() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let term = cluster.cores[leader]!.term
        let target = cluster.ids.first { $0 != leader }!
        try cluster.cores[leader]!.transferLeadership(to: target)
        cluster.stabilize()
        #expect(cluster.leader == target)
        #expect(cluster.cores[target]!.term == term + 1)
        #expect(cluster.cores[leader]!.role == .follower)
        cluster.tick(5)
        #expect(cluster.leader == target)
    }

    @Test("during a transfer the leader refuses proposals; a transfer that cannot finish times out")
    func transferTimesOut() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let target = cluster.ids.first { $0 != leader }!
        cluster.isolated = [target]
        try cluster.propose([[1]], at: leader)
        try cluster.cores[leader]!.transferLeadership(to: target)
        let refused = #expect(throws: RaftError.self) { try cluster.cores[leader]!.propose([[2]]) }
        #expect(refused?.code == .transferInProgress)
        #expect(cluster.cores[leader]!.status.transferee == target)
        cluster.tick(cluster.settings.electionTick)
        #expect(cluster.cores[leader]!.status.transferee == noNode)
        #expect(cluster.cores[leader]!.role == .leader)
        try cluster.propose([[3]], at: leader)
    }

    @Test("a lagging target is caught up before TimeoutNow is sent")
    func transferToLaggingTarget() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let target = cluster.ids.first { $0 != leader }!
        cluster.isolated = [target]
        try cluster.propose(payloads(5), at: leader)
        cluster.isolated = []
        try cluster.cores[leader]!.transferLeadership(to: target)
        cluster.stabilize()
        cluster.tick(3)
        #expect(cluster.leader == target)
        #expect(cluster.appliedPayloads(target) == payloads(5))
    }
}

@Suite("More rules")
struct MoreRuleTests {
    @Test("a configuration takes effect when appended and is rolled back when its entry is truncated")
    func configurationRollsBackOnTruncation() {
        var core = makeCore(1, terms: [1], term: 1)
        let change = Entry(
            index: 2,
            term: 1,
            kind: .configuration,
            payload: Configuration(voters: [1, 2, 3], learners: [4]).encoded()
        )
        core.step(
            message(2, 1, term: 1, .append(AppendRequest(prevIndex: 1, prevTerm: 1, entries: [change], commit: 1))))
        #expect(core.configuration.learners == [4])
        // A new leader overwrites index 2: the configuration reverts to the previous one.
        core.step(
            message(
                3, 1, term: 2, .append(AppendRequest(prevIndex: 1, prevTerm: 1, entries: entries([(2, 2)]), commit: 1)))
        )
        #expect(core.configuration == Configuration(voters: [1, 2, 3]))
    }

    @Test("a learner never campaigns, and its acknowledgements do not count towards commit")
    func learnersDoNotVoteOrCount() throws {
        var learner = makeCore(4, voters: [1, 2, 3])
        for _ in 0..<100 { learner.tick() }
        #expect(learner.role == .follower)
        #expect(learner.ready().messages.isEmpty)

        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        try cluster.cores[leader]!.changeMembership(.addLearner(4))
        cluster.add(4, storage: MemoryRaftStorage(configuration: Configuration()))
        cluster.tick(3)
        let voters = cluster.ids.filter { $0 != leader && $0 != 4 }
        cluster.isolated = Set(voters)
        try cluster.propose([[1]], at: leader)
        cluster.tick(2)
        #expect(cluster.cores[4]!.lastIndex == cluster.cores[leader]!.lastIndex)  // replicated to the learner
        #expect(cluster.cores[leader]!.commitIndex < cluster.cores[leader]!.lastIndex)  // but not committed
    }

    @Test("flow control: proposals beyond maxUncommittedBytes are dropped with a typed error")
    func maxUncommittedBytes() throws {
        var settings = RaftSettings()
        settings.maxUncommittedBytes = 1_000
        var cluster = RaftTestCluster(voters: 3, settings: settings)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        cluster.isolated = Set(cluster.ids.filter { $0 != leader })
        try cluster.propose(payloads(6, size: 100), at: leader)
        try cluster.propose(payloads(3, size: 100), at: leader)
        let dropped = #expect(throws: RaftError.self) { try cluster.cores[leader]!.propose(payloads(2, size: 100)) }
        #expect(dropped?.code == .proposalDropped)
        cluster.isolated = []
        cluster.tick(3)
        try cluster.propose(payloads(2, size: 100), at: leader)  // committed and applied: room again
    }

    @Test("settings are validated: reserved node id, tick ordering, lease reads need check-quorum")
    func settingsValidation() {
        let storage = MemoryRaftStorage(configuration: Configuration(voters: [1]))
        #expect(throws: RaftError.self) { _ = try Core(id: 0, storage: storage, randomSeed: 1) }
        var ticks = RaftSettings()
        ticks.heartbeatTick = 10
        #expect(throws: RaftError.self) { _ = try Core(id: 1, storage: storage, settings: ticks, randomSeed: 1) }
        var lease = RaftSettings()
        lease.readOnlyOption = .leaseBased
        lease.checkQuorum = false
        #expect(throws: RaftError.self) { _ = try Core(id: 1, storage: storage, settings: lease, randomSeed: 1) }
    }

    @Test("configuration payloads round-trip and malformed ones are rejected, not trapped on")
    func configurationEncoding() {
        let configuration = Configuration(voters: [1, 5, 9], learners: [12])
        #expect(Configuration.decode(configuration.encoded()) == configuration)
        #expect(Configuration.decode([1, 2, 3]) == nil)
        #expect(Configuration.decode([UInt8](repeating: 0xFF, count: 16)) == nil)
    }
}
