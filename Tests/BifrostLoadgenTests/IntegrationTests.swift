import BifrostNodeTestKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the test's own machinery (a missing binary, a run that did not finish).
typealias LoadgenTestError = TestKitError

/// A finished `bifrost-loadgen` run.
struct LoadgenRun {
    /// The exit status.
    var status: Int32
    /// Everything it wrote to stdout.
    var out: String
    /// Everything it wrote to stderr.
    var err: String
    /// The TMPDIR the run was given (its spawned cluster's directory goes there).
    var temporaryDirectory: String
}

/// Runs `bifrost-loadgen` with `arguments` and a TMPDIR of its own. `whileRunning` is called with the process
/// and the path of its stderr file once it has started. The process is SIGKILLed (and the test fails) if it
/// has not exited after `limit`: a safety net, not a timing assertion.
func runLoadgen(
    _ arguments: [String], limit: Duration = .seconds(180),
    whileRunning: (Process, String) async throws -> Void = { _, _ in }
) async throws -> LoadgenRun {
    let binary = try productExecutable("bifrost-loadgen")
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("bifrost-loadgen-test-\(UUID())").path
    let tmp = root + "/tmp"
    try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    let outPath = root + "/stdout"
    let errPath = root + "/stderr"
    guard FileManager.default.createFile(atPath: outPath, contents: nil),
        FileManager.default.createFile(atPath: errPath, contents: nil)
    else { throw LoadgenTestError("cannot create the output files in \(root)") }
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["TMPDIR"] = tmp
    environment.removeValue(forKey: "BIFROST_MAP_BINARY")
    process.environment = environment
    process.standardOutput = FileHandle(forWritingAtPath: outPath)
    process.standardError = FileHandle(forWritingAtPath: errPath)
    try process.run()
    do {
        try await whileRunning(process, errPath)
    } catch {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        killProcesses(mentioning: tmp)
        try? FileManager.default.removeItem(atPath: root)
        throw error
    }
    let deadline = ContinuousClock.now + limit
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            killProcesses(mentioning: tmp)
            try? FileManager.default.removeItem(atPath: root)
            throw LoadgenTestError("bifrost-loadgen \(arguments) did not finish")
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    let run = LoadgenRun(
        status: process.terminationStatus,
        out: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
        err: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
        temporaryDirectory: tmp)
    return run
}

/// The pids of the processes whose command line contains `text`.
func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else {
            return nil
        }
        let commandLine = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return commandLine.contains(text) ? pid : nil
    }
}

/// SIGKILLs what a failed run left (nodes whose data is under `directory`), so a failing test leaks nothing.
func killProcesses(mentioning directory: String) {
    for pid in processes(mentioning: directory) { kill(pid, SIGKILL) }
}

/// Checks that the run left nothing behind: no spawned node alive (by the pids it printed, and no process whose
/// command line names its temporary directory) and no `bifrost-loadgen-*` directory; then removes the test's
/// own directory.
func expectCleanedUp(_ run: LoadgenRun, expectedNodes: Int) throws {
    let pids = run.err.split(separator: "\n").filter { $0.hasPrefix("spawned ") }.flatMap { line in
        line.components(separatedBy: " pid ").dropFirst().compactMap { Int32($0.prefix { $0.isNumber }) }
    }
    #expect(pids.count == expectedNodes, "\(run.err)")
    for pid in pids {
        #expect(kill(pid, 0) == -1 && errno == ESRCH, "bifrost-map pid \(pid) is still there")
    }
    let leftovers = processes(mentioning: run.temporaryDirectory)
    #expect(leftovers.isEmpty, "processes still running with data in \(run.temporaryDirectory): \(leftovers)")
    killProcesses(mentioning: run.temporaryDirectory)
    let left = try FileManager.default.contentsOfDirectory(atPath: run.temporaryDirectory)
    #expect(left.filter { $0.hasPrefix("bifrost-loadgen-") }.isEmpty, "left behind: \(left)")
    try? FileManager.default.removeItem(
        atPath: URL(fileURLWithPath: run.temporaryDirectory).deletingLastPathComponent().path)
}

@Suite("bifrost-loadgen with real processes", .serialized)
struct IntegrationTests {
    @Test("--spawn-cluster 3 --json: a sane report, and no node or directory left behind")
    func spawnedRun() async throws {
        let run = try await runLoadgen(["--spawn-cluster", "3", "--duration", "2", "--warmup", "1", "--json"])
        #expect(run.status == 0, "\(run.err)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any], "stdout: \(run.out)")
        #expect(object["tool"] as? String == "bifrost-loadgen")
        #expect(object["target"] as? String == "bifrost-native")
        let requests = try #require((object["requests"] as? NSNumber)?.intValue)
        #expect(requests > 0)
        #expect((object["errors"] as? NSNumber)?.intValue == 0, "\(run.out)")
        #expect((object["ops_per_sec"] as? NSNumber)?.doubleValue ?? 0 > 0)
        let latency = try #require(object["latency_ms"] as? [String: Any])
        let p50 = try #require((latency["p50"] as? NSNumber)?.doubleValue)
        let p99 = try #require((latency["p99"] as? NSNumber)?.doubleValue)
        let max = try #require((latency["max"] as? NSNumber)?.doubleValue)
        #expect(p50 > 0)
        #expect(p50 <= p99)
        #expect(p99 <= max)
        let parameters = try #require(object["parameters"] as? [String: Any])
        #expect(parameters["cluster"] as? String == "spawned:3")
        #expect((parameters["clients"] as? NSNumber)?.intValue == 64)
        // The memory of each node, read before the nodes stopped.
        let memory = try #require(object["node_memory"] as? [[String: Any]])
        #expect(memory.compactMap { ($0["node"] as? NSNumber)?.intValue } == [1, 2, 3])
        for node in memory {
            let rss = (node["rss_bytes"] as? NSNumber)?.intValue ?? 0
            #expect(rss > 1 << 20 && rss <= (node["peak_rss_bytes"] as? NSNumber)?.intValue ?? 0, "\(node)")
        }
        // Progress lines on stderr, the report alone on stdout.
        #expect(run.err.contains("[   1s] warmup "))
        #expect(run.out.split(separator: "\n").count == 1)
        try expectCleanedUp(run, expectedNodes: 3)
    }

    @Test("--protocol http on a spawned cluster: a preloaded mixed run over bifrost-map's HTTP API, no errors")
    func spawnedHTTPRun() async throws {
        let run = try await runLoadgen([
            "--protocol", "http", "--workload", "mixed", "--read-ratio", "0.5", "--preload", "--keyspace", "2000",
            "--clients", "8", "--connections", "4", "--duration", "2", "--warmup", "1", "--json",
        ])
        #expect(run.status == 0, "\(run.err)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any], "stdout: \(run.out)")
        #expect(object["target"] as? String == "bifrost-http")
        #expect((object["requests"] as? NSNumber)?.intValue ?? 0 > 0)
        #expect((object["errors"] as? NSNumber)?.intValue == 0, "\(run.out)")
        try expectCleanedUp(run, expectedNodes: 3)
    }

    @Test("SIGINT during the run: exit 130, the cluster is stopped and its directory removed")
    func interrupted() async throws {
        let run = try await runLoadgen([
            "--spawn-cluster", "3", "--duration", "600", "--clients", "4", "--connections", "2",
        ]) {
            process, errPath in
            // Wait for the first progress line: the cluster runs and the load is on.
            let deadline = ContinuousClock.now + .seconds(120)
            while !((try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "").contains("[   1s]") {
                guard process.isRunning, ContinuousClock.now < deadline else {
                    throw LoadgenTestError(
                        "no progress line: \((try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.status == 130, "\(run.err)")
        #expect(run.out.isEmpty)
        #expect(run.err.contains("stopped the spawned nodes"))
        try expectCleanedUp(run, expectedNodes: 3)
    }

    @Test("a usage error exits 64 before spawning anything")
    func usageError() async throws {
        let run = try await runLoadgen(["--clients", "0"])
        #expect(run.status == 64)
        #expect(run.err.contains("--clients"))
        #expect(!run.err.contains("spawned"))
        try expectCleanedUp(run, expectedNodes: 0)
    }
}
