import BifrostRaftCore
import Dispatch
import NIOPosix
import Testing

@testable import BifrostRaft

/// The leader's batching policy (``ProposalWindow``), driven as the driver drives it: no node, no clock.
@Suite("Proposal window")
struct ProposalWindowTests {
    private static func window(maxWait: UInt64 = 1_000) -> ProposalWindow {
        var settings = ProposalWindow.Settings()
        settings.maxWait = maxWait
        return ProposalWindow(settings: settings)
    }

    @Test("the defaults: a 1 ms window; off proposes at once, even with a batch in flight")
    func defaults() {
        #expect(ProposalWindow.Settings().maxWait == 1_000_000)
        #expect(ProposalWindow().isOn)
        var off = ProposalWindow(settings: .off)
        #expect(!off.isOn)
        #expect(off.shouldPropose(pending: 3, uncommitted: true, now: 0).propose)
        off.proposed(3)
        #expect(off.committed(pending: 2, now: 10) == nil)
        #expect(off.window == nil)
        #expect(off.inFlight == 0)
    }

    @Test("with nothing in flight and no window, the first command goes at once; later ones wait for its commit")
    func holdsWhileUncommitted() {
        var policy = Self.window()
        let first = policy.shouldPropose(pending: 1, uncommitted: false, now: 0)
        #expect(first.propose)
        #expect(first.closed == nil)
        policy.proposed(1)
        #expect(policy.inFlight == 1)
        // A second client's command while the first batch is in flight: held, at any time.
        #expect(policy.shouldPropose(pending: 1, uncommitted: true, now: 5).propose == false)
        #expect(policy.shouldPropose(pending: 1, uncommitted: true, now: 1_000_000).propose == false)
    }

    @Test("a lone client never waits: its next command is the whole target")
    func loneClient() {
        var policy = Self.window()
        var now: UInt64 = 0
        for _ in 0..<5 {
            #expect(policy.shouldPropose(pending: 1, uncommitted: false, now: now).propose)
            policy.proposed(1)
            now += 100
            #expect(policy.committed(pending: 0, now: now) == now + 1_000)
            #expect(policy.window?.target == 1)
            now += 10
            let decision = policy.shouldPropose(pending: 1, uncommitted: false, now: now)
            #expect(decision.propose)
            #expect(decision.closed?.closing == .target)
            #expect(policy.window == nil)
        }
    }

    @Test("two cohorts that take turns merge into one batch")
    func cohortsMerge() {
        var policy = Self.window()
        // Cohort A (8 clients) is in flight; cohort B (8) arrives meanwhile and is held.
        #expect(policy.shouldPropose(pending: 8, uncommitted: false, now: 0).propose)
        policy.proposed(8)
        #expect(!policy.shouldPropose(pending: 8, uncommitted: true, now: 50).propose)
        // A commits: the window expects B's 8 held plus A's 8 answered.
        #expect(policy.committed(pending: 8, now: 100) == 1_100)
        let opened = policy.window
        #expect(opened == ProposalWindow.Window(held: 8, answered: 8, opened: 100, deadline: 1_100))
        #expect(opened?.target == 16)
        // A's clients come back one connection at a time.
        #expect(!policy.shouldPropose(pending: 12, uncommitted: false, now: 300).propose)
        let decision = policy.shouldPropose(pending: 16, uncommitted: false, now: 400)
        #expect(decision.propose)
        #expect(decision.closed?.window == opened)
        #expect(decision.closed?.closing == .target)
        // From now on every round carries all 16.
        policy.proposed(16)
        #expect(policy.committed(pending: 0, now: 900) == 1_900)
        #expect(policy.window?.target == 16)
    }

    @Test("a window that does not fill closes at its deadline, and counts only what was answered since")
    func closesAtTheDeadline() {
        var policy = Self.window()
        #expect(policy.shouldPropose(pending: 4, uncommitted: false, now: 0).propose)
        policy.proposed(4)
        #expect(policy.committed(pending: 0, now: 10) == 1_010)
        // Only 3 of the 4 clients come back (the fourth thinks, or left).
        #expect(!policy.shouldPropose(pending: 3, uncommitted: false, now: 1_009).propose)
        let decision = policy.shouldPropose(pending: 3, uncommitted: false, now: 1_010)
        #expect(decision.propose)
        #expect(decision.closed?.closing == .deadline)
        policy.proposed(3)
        #expect(policy.committed(pending: 0, now: 1_500) == 2_500)
        #expect(policy.window?.target == 3)
    }

    @Test("batches proposed while others are in flight all count when everything commits")
    func cumulativeInFlight() {
        var policy = Self.window()
        policy.proposed(5)
        // A full batch goes regardless of the window (the driver's own limit), adding to what is in flight.
        policy.proposed(7)
        #expect(policy.inFlight == 12)
        #expect(policy.committed(pending: 2, now: 0) == 1_000)
        #expect(policy.window?.target == 14)
        #expect(policy.inFlight == 0)
        // Nothing proposed since: no new window.
        #expect(policy.committed(pending: 2, now: 5) == nil)
        #expect(policy.window?.target == 14)
    }

    @Test("reset (a change of role) forgets what is in flight and the open window")
    func reset() {
        var policy = Self.window()
        policy.proposed(3)
        _ = policy.committed(pending: 1, now: 0)
        policy.proposed(2)
        policy.reset()
        #expect(policy.window == nil)
        #expect(policy.inFlight == 0)
        #expect(policy.shouldPropose(pending: 1, uncommitted: false, now: 1).propose)
        #expect(policy.committed(pending: 0, now: 2) == nil)
    }
}

/// What the node test reads from the leader's driver.
private typealias Observed = (last: UInt64, commit: UInt64, pending: Int, window: ProposalWindow.Window?)

/// The window on a running node: what the leader holds, and that held commands still go out.
@Suite("Proposal window on a node", .serialized)
struct ProposalWindowNodeTests {
    @Test("a leader holds a command while its batch is uncommitted, then proposes it when the window closes")
    func holdsThenProposes() async throws {
        // A long window, so that the state in between is there to observe.
        try await TestNodeCluster.with(3, tune: { $0.proposalWindow.maxWait = 2_000_000_000 }) { cluster in
            let leaderID = try await cluster.waitForLeader()
            let leader = cluster.member(leaderID)
            // Attempts that outlast the blocked disks: a retry would be one more proposal to count.
            let first = cluster.client { $0.attemptTimeout = .seconds(30) }
            let second = cluster.client { $0.attemptTimeout = .seconds(30) }
            _ = try await first.set("warm", "1")
            _ = try await second.set("warm", "2")
            func state() async throws -> Observed {
                try #require(
                    try await leader.inspectDriver {
                        ($0.core.lastIndex, $0.core.commitIndex, $0.proposals.count, $0.window.window)
                    })
            }
            func waitUntil(_ what: String, _ condition: (Observed) -> Bool) async throws -> Observed {
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    let now = try await state()
                    if condition(now) { return now }
                    try await Task.sleep(for: .milliseconds(5))
                }
                Issue.record("timed out waiting until \(what)")
                return try await state()
            }

            // Every node's disk thread blocks until the test lets it go: nothing commits meanwhile.
            let gates = (0..<3).map { _ in DispatchSemaphore(value: 0) }
            for (id, gate) in zip(1...3, gates) {
                try #require(cluster.member(NodeID(id)).node).diskPool.submit { _ in gate.wait() }
            }
            let before = try await state()
            let a = Task { try await first.set("a", "1") }
            let proposed = try await waitUntil("the first command is proposed") { $0.last > before.last }
            let b = Task { try await second.set("b", "2") }
            let held = try await waitUntil("the second command is pending") { $0.pending == 1 }
            #expect(held.last == proposed.last, "the second command went into the log while the first was in flight")
            #expect(held.commit < held.last)
            for gate in gates { gate.signal() }

            // The first commits; the window waits for its client, and for the one it holds.
            _ = try await a.value
            // The commit arrives with a peer's acknowledgement, between passes: the window opens before the
            // held command is looked at, so it stays held.
            let open = try await waitUntil("the window opens") { $0.window != nil }
            #expect(open.pending == 1, "the held command went out without waiting for the first client")
            #expect(open.window?.held == 1)
            #expect(open.window?.answered == 1)
            // Nobody else comes: the window closes at its deadline and the command goes out.
            #expect(try await b.value.old == nil)
            #expect(try await second.get("b") == "2")
            await first.close()
            await second.close()
        }
    }
}
