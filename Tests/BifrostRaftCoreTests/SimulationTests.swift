import BifrostRaftCore
import BifrostTestKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seeds to run: `BIFROST_SIM_SEED=<seed>` runs one seed; `BIFROST_SIM_SEEDS=<n>` runs seeds `0..<n`
/// (default 1,000); `BIFROST_SIM_FIRST_SEED` shifts the range.
enum SimulationSeeds {
    static func environment(_ name: String) -> UInt64? {
        guard let raw = getenv(name) else { return nil }
        return UInt64(String(cString: raw))
    }

    static let chunkCount = 16
    /// Lets one chunk's thread run at a time (about one core), leaving the rest of the machine to the other tests.
    static let oneChunkAtATime = DispatchSemaphore(value: 1)

    static var seeds: [UInt64] {
        if let one = environment("BIFROST_SIM_SEED") { return [one] }
        let count = environment("BIFROST_SIM_SEEDS") ?? 1_000
        let first = environment("BIFROST_SIM_FIRST_SEED") ?? 0
        return Array(first..<(first + count))
    }

    static func chunk(_ index: Int) -> [UInt64] {
        let all = seeds
        return stride(from: index, to: all.count, by: chunkCount).map { all[$0] }
    }
}

/// Sums of the per-seed reports, printed per chunk.
struct SimulationTotals: CustomStringConvertible {
    var seeds = 0
    var ticks = 0
    var acknowledged = 0
    var elections = 0
    var crashes = 0
    var delivered = 0
    var snapshots = 0
    var membership = 0
    var transfers = 0
    var reads = 0
    var maxLiveness = 0

    mutating func add(_ report: SimulationReport) {
        seeds += 1
        ticks += report.ticks
        acknowledged += report.acknowledged
        elections += report.elections
        crashes += report.crashes
        delivered += report.delivered
        snapshots += report.snapshotsInstalled
        membership += report.membershipChanges
        transfers += report.transfers
        reads += report.reads
        maxLiveness = max(maxLiveness, report.livenessTicks)
    }

    var description: String {
        "\(seeds) seeds, \(ticks) ticks, \(acknowledged) writes acknowledged, \(reads) reads checked, "
            + "\(elections) elections, \(crashes) crashes, \(delivered) messages, \(snapshots) snapshot installs, "
            + "\(membership) membership changes, \(transfers) transfers, max liveness \(maxLiveness) ticks"
    }
}

@Suite("Simulation")
struct SimulationTests {
    @Test(
        "Simulation: randomized seeds keep every safety invariant and converge",
        arguments: 0..<SimulationSeeds.chunkCount)
    func simulationSeeds(chunk: Int) async throws {
        let seeds = SimulationSeeds.chunk(chunk)
        // The seeds run on a thread of their own, one chunk at a time: a minute of CPU on the cooperative pool
        // would stall every other test of the parallel run, and time out those with deadlines.
        let outcome: (totals: String, failure: String?) = await withCheckedContinuation { continuation in
            Thread {
                SimulationSeeds.oneChunkAtATime.wait()
                defer { SimulationSeeds.oneChunkAtATime.signal() }
                var totals = SimulationTotals()
                for seed in seeds {
                    do {
                        let report = try Simulation.run(seed: seed)
                        totals.add(report)
                        if seeds.count == 1 { print(report) }
                    } catch {
                        print(error)
                        continuation.resume(returning: ("\(totals)", "\(error)"))
                        return
                    }
                }
                continuation.resume(returning: ("\(totals)", nil))
            }.start()
        }
        if let failure = outcome.failure {
            Issue.record("\(failure)")
            return
        }
        if !seeds.isEmpty { print("simulation chunk \(chunk): \(outcome.totals)") }
    }
}

@Suite("Simulation reports")
struct SimulationReportTests {
    @Test("Simulation: a run does real work (elections, commits, crashes, snapshots, membership, reads)")
    func simulationDoesWork() throws {
        var totals = (acknowledged: 0, elections: 0, crashes: 0, snapshots: 0, membership: 0, reads: 0, transfers: 0)
        for seed in UInt64(0)..<8 {
            let report = try Simulation.run(seed: seed)
            print(report)
            totals.acknowledged += report.acknowledged
            totals.elections += report.elections
            totals.crashes += report.crashes
            totals.snapshots += report.snapshotsInstalled
            totals.membership += report.membershipChanges
            totals.reads += report.reads
            totals.transfers += report.transfers
        }
        #expect(totals.acknowledged > 100)
        #expect(totals.elections > 8)
        #expect(totals.crashes > 0)
        #expect(totals.snapshots > 0)
        #expect(totals.membership > 0)
        #expect(totals.reads > 0)
        #expect(totals.transfers > 0)
    }
}

@Suite("Simulation checker")
struct SimulationCheckerTests {
    @Test("Simulation: the checker reports a corrupted state machine (test hook)")
    func simulationDetectsCorruptedApply() {
        var configuration = SimulationConfiguration(seed: 7)
        configuration.corruptApplyAtTick = 50
        var simulation = Simulation(configuration: configuration)
        do {
            _ = try simulation.run()
            Issue.record("the corrupted run passed the checker")
        } catch {
            #expect(error.reason.contains("state machine safety"))
            #expect(!error.trace.isEmpty)
            #expect(error.description.contains("BIFROST_SIM_SEED=7"))
        }
    }

    @Test("Simulation: the checker catches a core that skips the log-matching check (test-only setting)")
    func simulationDetectsBrokenLogMatching() {
        var caught = 0
        var reasons: [String] = []
        for seed in UInt64(0)..<40 {
            var configuration = SimulationConfiguration(seed: seed)
            configuration.settings.testingSkipLogMatchingCheck = true
            var simulation = Simulation(configuration: configuration)
            do {
                _ = try simulation.run()
            } catch {
                caught += 1
                reasons.append(error.reason)
            }
        }
        print("broken core caught in \(caught)/40 seeds; first reasons: \(reasons.prefix(3))")
        #expect(caught > 0)
    }

    @Test("Simulation: a seed replays bit for bit")
    func simulationIsDeterministic() throws {
        let first = try Simulation.run(seed: 42)
        let second = try Simulation.run(seed: 42)
        #expect(first == second)
    }
}
