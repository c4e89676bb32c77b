import BifrostRaftCore
import BifrostTestKit
import Testing

@Suite("Elections (§5.2, §9.6 pre-vote, §6.2 check-quorum)")
struct ElectionTests {
    @Test("leader election basics: one leader, everyone follows it in its term, the no-op commits")
    func leaderElectionBasics() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let term = cluster.cores[leader]!.term
        for id in cluster.ids where id != leader {
            #expect(cluster.cores[id]!.role == .follower)
            #expect(cluster.cores[id]!.leader == leader)
            #expect(cluster.cores[id]!.term == term)
        }
        #expect(cluster.ids.filter { cluster.cores[$0]!.role == .leader } == [leader])
        cluster.tick(2)
        for id in cluster.ids {
            let noop = try #require(cluster.applied[id]?.last)
            #expect(noop.kind == .noop)
            #expect(noop.term == term)
        }
    }

    @Test("election timeouts are randomized in [electionTick, 2 * electionTick)")
    func electionTimeoutIsRandomized() {
        var seen = Set<Int>()
        for seed in UInt64(1)...40 {
            var core = makeCore(1, seed: seed)
            var ticks = 0
            while core.role == .follower && ticks < 100 {
                core.tick()
                ticks += 1
            }
            #expect(ticks >= 10 && ticks < 20)
            seen.insert(ticks)
        }
        #expect(seen.count > 3)
    }

    @Test("a candidate steps down when it sees a higher term, or a leader of its own term")
    func candidateStepsDownOnHigherTerm() {
        var core = makeCore(1)
        core.campaign()
        #expect(core.role == .candidate)
        #expect(core.term == 1)
        core.step(message(2, 1, term: 2, .append(AppendRequest(prevIndex: 0, prevTerm: 0, entries: [], commit: 0))))
        #expect(core.role == .follower)
        #expect(core.term == 2)
        #expect(core.leader == 2)

        var other = makeCore(1)
        other.campaign()
        other.step(message(3, 1, term: 1, .heartbeat(commit: 0, readSequence: 0)))
        #expect(other.role == .follower)
        #expect(other.term == 1)
        #expect(other.leader == 3)
    }

    @Test("a vote is granted at most once per term, and persisted before the response is sent")
    func voteGrantedAtMostOncePerTerm() {
        var core = makeCore(1)
        let request = VoteRequest(lastIndex: 0, lastTerm: 0, preVote: false, transfer: false)
        core.step(message(2, 1, term: 1, .vote(request)))
        let first = core.cycle()
        // Ordering contract: the vote is in the hard state of the same batch as the response.
        #expect(first.hardState?.vote == 2)
        #expect(first.hardState?.term == 1)
        #expect(first.messages.map(\.body) == [.voteResponse(granted: true, preVote: false)])

        core.step(message(3, 1, term: 1, .vote(request)))
        #expect(core.cycle().messages.map(\.body) == [.voteResponse(granted: false, preVote: false)])
        core.step(message(2, 1, term: 1, .vote(request)))
        #expect(core.cycle().messages.map(\.body) == [.voteResponse(granted: true, preVote: false)])
        #expect(core.vote == 2)
    }

    @Test("a vote requires the candidate's log to be at least as up to date (§5.4.1)")
    func voteRequiresUpToDateLog() {
        func answer(lastIndex: UInt64, lastTerm: UInt64, term: UInt64) -> Bool {
            var core = makeCore(1, terms: [1, 1, 2], term: 2)
            core.step(
                message(
                    2, 1, term: term,
                    .vote(VoteRequest(lastIndex: lastIndex, lastTerm: lastTerm, preVote: false, transfer: false)))
            )
            return core.cycle().messages.first?.body == .voteResponse(granted: true, preVote: false)
        }
        #expect(answer(lastIndex: 9, lastTerm: 1, term: 3) == false)  // lower last term, longer log
        #expect(answer(lastIndex: 2, lastTerm: 2, term: 3) == false)  // same last term, shorter log
        #expect(answer(lastIndex: 3, lastTerm: 2, term: 3) == true)  // identical
        #expect(answer(lastIndex: 1, lastTerm: 3, term: 4) == true)  // higher last term
    }

    @Test("a candidate that wins a majority becomes leader and appends a no-op")
    func candidateWinsWithMajority() {
        var core = makeCore(1, voters: [1, 2, 3, 4, 5])
        core.campaign()
        core.step(message(2, 1, term: 1, .voteResponse(granted: true, preVote: false)))
        #expect(core.role == .candidate)
        core.step(message(3, 1, term: 1, .voteResponse(granted: false, preVote: false)))
        core.step(message(4, 1, term: 1, .voteResponse(granted: true, preVote: false)))
        #expect(core.role == .leader)
        #expect(core.entries(from: 1, to: 2)?.first?.kind == .noop)
    }

    @Test("pre-vote does not bump the term; a rejoining partitioned node does not disrupt the stable leader")
    func preVoteAndCheckQuorumTogether() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let term = cluster.cores[leader]!.term
        let partitioned = cluster.ids.first { $0 != leader }!
        cluster.isolated = [partitioned]
        cluster.tick(100)
        // The partitioned node kept asking for pre-votes but never bumped its term.
        #expect(cluster.cores[partitioned]!.term == term)
        #expect(cluster.cores[partitioned]!.role != .leader)
        #expect(cluster.cores[leader]!.role == .leader)
        try cluster.propose(payloads(3), at: leader)
        cluster.isolated = []
        cluster.tick(30)
        #expect(cluster.leader == leader)
        #expect(cluster.cores[leader]!.term == term)
        #expect(cluster.cores[partitioned]!.leader == leader)
        #expect(cluster.appliedPayloads(partitioned) == cluster.appliedPayloads(leader))
    }

    @Test("followers ignore vote requests while they hear from a leader (check-quorum lease)")
    func followersIgnoreVotesInLease() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let follower = cluster.ids.first { $0 != leader }!
        let term = cluster.cores[follower]!.term
        cluster.cores[follower]!.step(
            message(
                99, follower, term: term + 5,
                .vote(VoteRequest(lastIndex: 100, lastTerm: 100, preVote: false, transfer: false)))
        )
        #expect(cluster.cores[follower]!.term == term)
        #expect(cluster.cores[follower]!.leader == leader)
    }

    @Test("check-quorum: a leader that has not heard from a quorum within an election timeout steps down")
    func checkQuorumStepDown() throws {
        var cluster = RaftTestCluster(voters: 3)
        let leaderElected = cluster.electLeader()
        let leader = try #require(leaderElected)
        let term = cluster.cores[leader]!.term
        cluster.isolated = [leader]
        cluster.tick(2 * cluster.settings.electionTick)
        #expect(cluster.cores[leader]!.role == .follower)
        cluster.tick(40)
        let newLeader = try #require(cluster.leader)
        #expect(newLeader != leader)
        #expect(cluster.cores[newLeader]!.term > term)
        cluster.isolated = []
        cluster.tick(10)
        #expect(cluster.cores[leader]!.leader == newLeader)
    }

    @Test("a single-voter cluster elects itself and commits once its own entries are durable")
    func singleVoterCommitsOnlyWhenDurable() throws {
        var core = makeCore(1, voters: [1])
        core.campaign()
        #expect(core.role == .leader)
        _ = core.cycle()
        #expect(core.commitIndex == 1)
        try core.propose([[1], [2]])
        #expect(core.commitIndex == 1)  // not durable yet
        let ready = core.ready()
        #expect(ready.entries.count == 2)
        #expect(core.commitIndex == 1)
        core.storage.append(ready.entries)
        core.advance(ready)
        #expect(core.commitIndex == 3)  // the leader's own durable ack completed the quorum
        #expect(core.cycle().committedEntries.map(\.index) == [2, 3])
    }
}
