import BifrostNodeTestKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `bifrost-map` binary (`BIFROST_MAP_BINARY` overrides it).
func mapExecutable() throws -> URL {
    try productExecutable("bifrost-map", override: ProcessInfo.processInfo.environment["BIFROST_MAP_BINARY"])
}

/// A failure of the test machinery.
typealias AppTestError = TestKitError

/// The output of one CLI run.
struct CommandResult {
    var status: Int32
    var out: String
    var err: String
}

/// Three `bifrost-map serve` processes on 127.0.0.1 with their data in a temporary directory. Every process it
/// starts is killed by ``destroy()``.
final class ProcessCluster {
    let binary: URL
    let root: String
    let addresses: [Int: String]
    var servers: [Int: Process] = [:]
    /// The HTTP API port of each running node (every node serves it on a free port).
    var httpPorts: [Int: Int] = [:]
    /// The ready line each node printed when it last started.
    var readyLines: [Int: String] = [:]
    var others: [Process] = []
    private var logCounter = 0

    init() throws {
        binary = try mapExecutable()
        root = FileManager.default.temporaryDirectory.appendingPathComponent("bifrost-map-app-\(UUID())").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var addresses: [Int: String] = [:]
        for id in 1...3 { addresses[id] = "127.0.0.1:\(try freePort())" }
        self.addresses = addresses
    }

    var all: String { (1...3).compactMap { addresses[$0] }.joined(separator: ",") }
    var peers: String { (1...3).compactMap { id in addresses[id].map { "\(id)@\($0)" } }.joined(separator: ",") }

    private func launch(_ arguments: [String], name: String) throws -> (Process, out: String, err: String) {
        logCounter += 1
        let out = "\(root)/\(name)-\(logCounter).out"
        let err = "\(root)/\(name)-\(logCounter).err"
        guard FileManager.default.createFile(atPath: out, contents: nil),
            FileManager.default.createFile(atPath: err, contents: nil)
        else { throw AppTestError("cannot create \(out) and \(err)") }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "BIFROST_CLUSTER")
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        return (process, out, err)
    }

    static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Starts node `id` and waits for its ready line.
    func start(_ id: Int) async throws {
        guard let address = addresses[id] else { throw AppTestError("no node \(id)") }
        let (process, out, err) = try launch(
            [
                "serve", "--name", "n\(id)", "--listen", address, "--data-dir", "\(root)/n\(id)", "--peers", peers,
                "--http", "127.0.0.1:0", "--log-level", "warning",
            ], name: "n\(id)")
        servers[id] = process
        let deadline = ContinuousClock.now + .seconds(15)
        let marker = "HTTP API on http://127.0.0.1:"
        while !Self.read(out).contains("ready on") || !Self.read(out).contains(marker) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw AppTestError("node \(id) did not become ready: \(Self.read(err))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let output = Self.read(out)
        readyLines[id] = output.split(separator: "\n").last { $0.contains("ready on") }.map(String.init)
        if let range = output.range(of: marker), let port = Int(output[range.upperBound...].prefix { $0.isNumber }) {
            httpPorts[id] = port
        }
    }

    func startAll() async throws {
        for id in 1...3 { try await start(id) }
    }

    /// Sends `signal` to node `id` and waits for it to exit.
    func stop(_ id: Int, signal: Int32) async throws {
        guard let process = servers.removeValue(forKey: id) else { return }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + .seconds(15)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw AppTestError("node \(id) did not stop on signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs the CLI to completion (killed after 30 s).
    func run(_ arguments: [String]) async throws -> CommandResult {
        let (process, out, err) = try launch(arguments, name: "cli")
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw AppTestError("bifrost-map \(arguments) did not finish")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return CommandResult(status: process.terminationStatus, out: Self.read(out), err: Self.read(err))
    }

    /// Starts a long-running CLI command (`watch`); returns the paths of its stdout and stderr.
    func background(_ arguments: [String]) throws -> (out: String, err: String) {
        let (process, out, err) = try launch(arguments, name: "bg")
        others.append(process)
        return (out, err)
    }

    /// Polls `body` until it returns true or `timeout` passes.
    func eventually(
        _ what: String, timeout: Duration = .seconds(15), _ body: () async throws -> Bool
    ) async throws {
        try await BifrostMapAppTests.eventually(what, timeout: timeout, body)
    }

    /// The id of the leader `status` reports.
    func leader() async throws -> Int {
        var found: Int?
        try await eventually("a leader") {
            let status = try await run(["status", "--cluster", all])
            guard status.status == 0,
                let line = status.out.split(separator: "\n").first(where: { $0.hasPrefix("leader: ") }),
                let id = Int(line.dropFirst("leader: ".count).prefix { $0.isNumber })
            else { return false }
            found = id
            return true
        }
        guard let found else { throw AppTestError("no leader") }
        return found
    }

    /// Kills every process and removes the data.
    func destroy() {
        for process in Array(servers.values) + others where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        servers.removeAll()
        others.removeAll()
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// The number of NIO singleton event-loop threads of process `pid` (from `/proc/<pid>/task/*/comm`).
func eventLoopThreads(of pid: Int32) -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.filter { task in
        let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
        return name.hasPrefix("NIO-SGLTN-")
    }.count
}

/// The niceness of every thread of process `pid` (field 19 of `/proc/<pid>/task/*/stat`).
func threadNiceness(of pid: Int32) -> [Int] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.compactMap { task in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After the command name (which may hold spaces) come the fields from 3 on; the niceness is field 19.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 16 ? Int(fields[16]) : nil
    }
}

/// Polls `body` until it returns true or `timeout` passes.
func eventually(_ what: String, timeout: Duration = .seconds(15), _ body: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !body() {
        guard ContinuousClock.now < deadline else { throw AppTestError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(100))
    }
}

/// Runs `body` on a fresh cluster and always destroys it.
func withProcessCluster(_ body: (ProcessCluster) async throws -> Void) async throws {
    let cluster = try ProcessCluster()
    do {
        try await body(cluster)
    } catch {
        cluster.destroy()
        throw error
    }
    cluster.destroy()
}

@Suite("bifrost-map with real processes", .serialized)
struct MapAppTests {
    @Test("a write through the CLI is readable from every node, and a watcher sees another client's insert")
    func writeReadWatch() async throws {
        try await withProcessCluster { cluster in
            try await cluster.startAll()
            // The server replaces malloc with jemalloc, and checks at run time that jemalloc serves it.
            for id in 1...3 {
                let ready = try #require(cluster.readyLines[id])
                #expect(ready.contains(", allocator jemalloc "), "\(ready)")
                // One event loop by default (`--event-loops 1`): NIO names its threads NIO-SGLTN-<group>-#<loop>.
                let pid = try #require(cluster.servers[id]).processIdentifier
                #expect(eventLoopThreads(of: pid) == 1, "node \(id)")
                // The snapshot thread, alone, runs at niceness 10 (`snapshotThreadNice`). (Swift's dispatch threads
                // set their own, from their quality of service.)
                #expect(threadNiceness(of: pid).filter { $0 == 10 }.count == 1, "node \(id)")
            }
            let set = try await cluster.run(["set", "greeting", "hello wörld", "--cluster", cluster.all])
            #expect(set.status == 0, "\(set.err)")
            for id in 1...3 {
                let address = try #require(cluster.addresses[id])
                try await cluster.eventually("node \(id) to apply the write") {
                    let get = try await cluster.run([
                        "get", "greeting", "--cluster", address, "--consistency", "stale",
                    ])
                    return get.status == 0 && get.out == "hello wörld\n"
                }
            }
            let missing = try await cluster.run(["get", "nope", "--cluster", cluster.all])
            #expect(missing.status == 1)
            #expect(missing.out.isEmpty)

            let watch = try cluster.background(["watch", "--inserts", "--cluster", try #require(cluster.addresses[1])])
            try await cluster.eventually("the watch to subscribe") {
                ProcessCluster.read(watch.err).contains("watching inserts")
            }
            let insert = try await cluster.run([
                "set", "fresh", "value", "--cluster", try #require(cluster.addresses[3]),
            ])
            #expect(insert.status == 0, "\(insert.err)")
            try await cluster.eventually("the watcher to print the insert") {
                ProcessCluster.read(watch.out).split(separator: "\n").contains { $0.hasSuffix(" fresh=value") }
            }
        }
    }

    @Test("writes resume after the leader is SIGKILLed, it catches up on restart, and data survives a full restart")
    func failoverAndRestart() async throws {
        try await withProcessCluster { cluster in
            try await cluster.startAll()
            #expect(try await cluster.run(["set", "a", "1", "--cluster", cluster.all]).status == 0)
            let leader = try await cluster.leader()
            try await cluster.stop(leader, signal: SIGKILL)
            let survivors = (1...3).filter { $0 != leader }.compactMap { cluster.addresses[$0] }.joined(separator: ",")
            let write = try await cluster.run(["set", "b", "2", "--cluster", survivors])
            #expect(write.status == 0, "\(write.err)")
            #expect(try await cluster.run(["get", "b", "--cluster", survivors]).out == "2\n")

            try await cluster.start(leader)
            let restarted = try #require(cluster.addresses[leader])
            try await cluster.eventually("the restarted node to catch up") {
                let get = try await cluster.run(["get", "b", "--cluster", restarted, "--consistency", "stale"])
                return get.out == "2\n"
            }

            for id in 1...3 { try await cluster.stop(id, signal: SIGTERM) }
            try await cluster.startAll()
            let list = try await cluster.run(["list", "--cluster", cluster.all])
            #expect(list.status == 0, "\(list.err)")
            #expect(list.out == "a=1\nb=2\n")
        }
    }
}
