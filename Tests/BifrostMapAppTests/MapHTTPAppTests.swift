import BifrostNodeTestKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The JSON object of a reply body.
func jsonObject(_ reply: HTTPReply) throws -> [String: Any] {
    let parsed = try JSONSerialization.jsonObject(with: Data(reply.body.utf8))
    return try #require(parsed as? [String: Any], "not a JSON object: \(reply.body)")
}

@Suite("bifrost-map's HTTP API with real processes", .serialized)
struct MapHTTPAppTests {
    @Test("writes on any node (followers forward), reads from every node, CAS, list, batch, cluster, health, metrics")
    func keysAndValues() async throws {
        try await withProcessCluster { cluster in
            try await cluster.startAll()
            let leader = try await cluster.leader()
            let follower = try #require((1...3).first { $0 != leader })
            let followerPort = try #require(cluster.httpPorts[follower])

            // A write on a follower goes to the leader.
            let put = try await RawHTTP.request("PUT", "/v1/kv/greeting", port: followerPort, body: Array("hello".utf8))
            #expect(put.status == 200, "\(put.body)")
            let index = try #require(try jsonObject(put)["index"] as? Int)
            #expect(index > 0)
            // Keys may hold slashes and percent-encoded bytes.
            let slashed = try await RawHTTP.request("PUT", "/v1/kv/dir/a%20b", port: followerPort, body: [0xFF, 0])
            #expect(slashed.status == 200, "\(slashed.body)")

            for id in 1...3 {
                let port = try #require(cluster.httpPorts[id])
                try await cluster.eventually("node \(id) to serve the write") {
                    let get = try await RawHTTP.request("GET", "/v1/kv/greeting?consistency=stale", port: port)
                    return get.status == 200 && (try? jsonObject(get)["value"] as? String) == "hello"
                }
                let linearizable = try await RawHTTP.request("GET", "/v1/kv/greeting", port: port)
                #expect(linearizable.status == 200)
                #expect(try jsonObject(linearizable)["value"] as? String == "hello")
                let raw = try await RawHTTP.request("GET", "/v1/kv/dir/a%20b?raw", port: port)
                #expect(raw.status == 200)
                #expect(raw.headers["content-type"] == "application/octet-stream")
                let binary = try await RawHTTP.request("GET", "/v1/kv/dir/a%20b", port: port)
                #expect(try jsonObject(binary)["value_base64"] as? String == "/wA=")
            }

            // The CLI sees what HTTP wrote, and HTTP what the CLI wrote.
            #expect(try await cluster.run(["get", "greeting", "--cluster", cluster.all]).out == "hello\n")
            #expect(try await cluster.run(["set", "cli", "from the CLI", "--cluster", cluster.all]).status == 0)
            let fromCLI = try await RawHTTP.request("GET", "/v1/kv/cli", port: followerPort)
            #expect(try jsonObject(fromCLI)["value"] as? String == "from the CLI")

            // Compare-and-swap: 409 with the current value, then a swap.
            let conflict = try await RawHTTP.request(
                "POST", "/v1/cas/greeting", port: followerPort, body: Array(#"{"expected":"nope","new":"x"}"#.utf8))
            #expect(conflict.status == 409)
            #expect(try jsonObject(conflict)["code"] as? String == "casFailed")
            #expect(try jsonObject(conflict)["current"] as? String == "hello")
            let swapped = try await RawHTTP.request(
                "POST", "/v1/cas/greeting", port: followerPort, body: Array(#"{"expected":"hello","new":"hi"}"#.utf8))
            #expect(swapped.status == 200, "\(swapped.body)")
            #expect(try jsonObject(swapped)["swapped"] as? Bool == true)
            let absent = try await RawHTTP.request(
                "POST", "/v1/cas/fresh", port: followerPort, body: Array(#"{"expected":null,"new":"new"}"#.utf8))
            #expect(absent.status == 200, "\(absent.body)")

            // A batch, then a paginated listing.
            let batch = try await RawHTTP.request(
                "POST", "/v1/kv", port: followerPort,
                body: Array(
                    #"{"entries":[{"key":"p/1","value":"a"},{"key":"p/2","value":"b"},{"key":"p/3","value":"c"}]}"#.utf8
                ))
            #expect(batch.status == 200, "\(batch.body)")
            let page = try jsonObject(try await RawHTTP.request("GET", "/v1/kv?prefix=p/&limit=2", port: followerPort))
            let entries = try #require(page["entries"] as? [[String: Any]])
            #expect(entries.compactMap { $0["key"] as? String } == ["p/1", "p/2"])
            let next = try #require(page["next"] as? String)
            let rest = try jsonObject(
                try await RawHTTP.request("GET", "/v1/kv?prefix=p/&limit=2&after=\(next)", port: followerPort))
            #expect((rest["entries"] as? [[String: Any]])?.compactMap { $0["key"] as? String } == ["p/3"])
            #expect(rest["next"] is NSNull)

            // Deletes: the old value, then 404.
            let deleted = try await RawHTTP.request("DELETE", "/v1/kv/p/1", port: followerPort)
            #expect(try jsonObject(deleted)["previous"] as? String == "a")
            let gone = try await RawHTTP.request("GET", "/v1/kv/p/1", port: followerPort)
            #expect(gone.status == 404)
            #expect(try jsonObject(gone)["code"] as? String == "keyNotFound")

            // Cluster, health and metrics on every node.
            for id in 1...3 {
                let port = try #require(cluster.httpPorts[id])
                let info = try jsonObject(try await RawHTTP.request("GET", "/v1/cluster", port: port))
                #expect((info["voters"] as? [Any])?.count == 3)
                #expect((info["leader"] as? [String: Any])?["id"] as? Int == leader)
                let health = try await RawHTTP.request("GET", "/health", port: port)
                #expect(health.status == 200)
                let metrics = try await RawHTTP.request("GET", "/metrics", port: port)
                #expect(metrics.status == 200)
                for name in [
                    "bifrost_raft_term", "bifrost_raft_commit_index", "bifrost_raft_applied_index",
                    "bifrost_raft_leader_changes_total", "bifrost_raft_log_entries", "http_server_request_duration",
                ] {
                    #expect(metrics.body.contains(name), "node \(id) has no \(name)")
                }
            }
        }
    }

    @Test("malformed HTTP and JSON get a 4xx or a clean close, and every node stays up")
    func badInput() async throws {
        try await withProcessCluster { cluster in
            try await cluster.startAll()
            let port = try #require(cluster.httpPorts[1])
            func expectStatus(
                _ method: String, _ path: String, body: String? = nil, _ status: Int, code: String,
                sourceLocation: SourceLocation = #_sourceLocation
            ) async throws {
                let reply = try await RawHTTP.request(method, path, port: port, body: body.map { Array($0.utf8) })
                #expect(reply.status == status, "\(method) \(path): \(reply.body)", sourceLocation: sourceLocation)
                #expect(
                    try jsonObject(reply)["code"] as? String == code, "\(reply.body)", sourceLocation: sourceLocation)
            }
            try await cluster.eventually("a leader") {
                (try? await RawHTTP.request("GET", "/health", port: port))?.status == 200
            }
            try await expectStatus("POST", "/v1/cas/k", body: "{not json", 400, code: "badRequest")
            try await expectStatus("POST", "/v1/cas/k", body: "[1, 2]", 400, code: "badRequest")
            try await expectStatus("POST", "/v1/cas/k", body: #"{"new": "x"}"#, 400, code: "badRequest")
            try await expectStatus("POST", "/v1/cas/k", body: #"{"expected": 5, "new": "x"}"#, 400, code: "badRequest")
            try await expectStatus(
                "POST", "/v1/cas/k", body: #"{"expected": null, "new_base64": "%%%"}"#, 400, code: "badRequest")
            try await expectStatus("POST", "/v1/kv", body: #"{"entries": [{"value": "x"}]}"#, 400, code: "badRequest")
            try await expectStatus("POST", "/v1/kv", body: "\u{0}\u{1}", 400, code: "badRequest")
            try await expectStatus("GET", "/v1/kv/k?consistency=bogus", 400, code: "badRequest")
            try await expectStatus("GET", "/v1/kv?limit=-3", 400, code: "badRequest")
            try await expectStatus("GET", "/v1/kv/%ZZ", 400, code: "badRequest")
            try await expectStatus("GET", "/v1/watch?key=a&prefix=b", 400, code: "badRequest")
            try await expectStatus("GET", "/v1/watch?after=x.y", 400, code: "badRequest")
            try await expectStatus("GET", "/v1/nothing", 404, code: "notFound")
            try await expectStatus("GET", "/v1/kv/missing", 404, code: "keyNotFound")
            try await expectStatus(
                "PUT", "/v1/kv/big", body: String(repeating: "x", count: (1 << 20) + 1), 413, code: "tooLarge")
            try await expectStatus(
                "PUT", "/v1/kv/" + String(repeating: "k", count: 5000), body: "v", 413, code: "tooLarge")

            // Garbage, a huge header and a negative length get a 4xx or a close.
            let hostile: [[UInt8]] = [
                Array("GARBAGE\r\n\r\n".utf8),
                Array((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }),
                Array("GET /v1/kv/x HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n".utf8),
                Array("GET /v1/kv/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8),
            ]
            // Clients that go away mid-request: a truncated head, and a body shorter than its length.
            for bytes in [
                "PUT /v1/kv/x HTTP/1.1\r\nConte", "PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort",
            ] {
                _ = try await RawHTTP.exchange(Array(bytes.utf8), port: port, readReply: false)
            }
            for bytes in hostile {
                let reply = try await RawHTTP.exchange(bytes, port: port, timeout: .seconds(5)) { received in
                    received.count > 12
                }
                if !reply.isEmpty {
                    let text = String(decoding: reply.prefix(12), as: UTF8.self)
                    #expect(text.hasPrefix("HTTP/1.1 4"), "a hostile request got \(text)")
                }
            }
            // Still up, all of them.
            for id in 1...3 {
                #expect(cluster.servers[id]?.isRunning == true)
                let health = try await RawHTTP.request("GET", "/health", port: try #require(cluster.httpPorts[id]))
                #expect(health.status == 200)
            }
            let put = try await RawHTTP.request("PUT", "/v1/kv/after", port: port, body: Array("ok".utf8))
            #expect(put.status == 200)
        }
    }

    @Test("an SSE watch on one node sees writes made through another, and resumes from Last-Event-ID")
    func watchStream() async throws {
        try await withProcessCluster { cluster in
            try await cluster.startAll()
            _ = try await cluster.leader()
            let watchPort = try #require(cluster.httpPorts[2])
            let writePort = try #require(cluster.httpPorts[3])
            // Three changes of w/ keys and one of another key, made once the stream has started: its first line
            // names the position it starts after, and every later event is delivered even if the node attaches the
            // watch a moment later.
            let (started, startedContinuation) = AsyncStream<Void>.makeStream()
            let watching = Task {
                defer { startedContinuation.finish() }
                return try await RawHTTP.exchange(
                    Array("GET /v1/watch?prefix=w/ HTTP/1.1\r\nHost: x\r\n\r\n".utf8), port: watchPort,
                    timeout: .seconds(20)
                ) { received in
                    let text = String(decoding: received, as: UTF8.self)
                    if text.contains(": watching after ") {
                        startedContinuation.yield()
                        startedContinuation.finish()
                    }
                    return text.components(separatedBy: "event: ").count > 3
                }
            }
            for await _ in started { break }
            for (method, key, value) in [
                ("PUT", "w/a", "1"), ("PUT", "other", "x"), ("PUT", "w/a", "2"), ("DELETE", "w/a", ""),
            ] {
                let reply = try await RawHTTP.request(
                    method, "/v1/kv/\(key)", port: writePort, body: method == "PUT" ? Array(value.utf8) : nil)
                #expect(reply.status == 200, "\(reply.body)")
            }
            let text = try RawHTTP.parse(try await watching.value).body
            let events = text.components(separatedBy: "\n\n").filter { $0.contains("event: ") }
            #expect(events.count == 3, "\(text.debugDescription)")
            #expect(events.map { $0.contains("event: insert") } == [true, false, false])
            #expect(events.map { $0.contains("event: update") } == [false, true, false])
            #expect(events.map { $0.contains("event: delete") } == [false, false, true])
            #expect(!text.contains("other"))

            // Resuming after the first event gives exactly the other two.
            let firstID = try #require(
                events.first?.split(separator: "\n").first { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) })
            let resumed = try await RawHTTP.exchange(
                Array("GET /v1/watch?prefix=w/ HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \(firstID)\r\n\r\n".utf8),
                port: watchPort, timeout: .seconds(20)
            ) { received in
                String(decoding: received, as: UTF8.self).components(separatedBy: "event: ").count > 2
            }
            let resumedEvents = try RawHTTP.parse(resumed).body.components(separatedBy: "\n\n").filter {
                $0.contains("event: ")
            }
            #expect(resumedEvents.count == 2)
            #expect(resumedEvents.first?.contains("event: update") == true)
        }
    }

    @Test("`watch --key` prints every change of one key made by another client")
    func cliWatchKey() async throws {
        try await withProcessCluster { cluster in
            try await cluster.startAll()
            let watch = try cluster.background(["watch", "--key", "color", "--cluster", cluster.all])
            try await cluster.eventually("the watch to subscribe") {
                ProcessCluster.read(watch.err).contains("watching changes of 'color'")
            }
            for arguments in [
                ["set", "color", "red"], ["set", "other", "x"], ["set", "color", "blue"], ["del", "color"],
            ] {
                let result = try await cluster.run(arguments + ["--cluster", cluster.all])
                #expect(result.status == 0, "\(result.err)")
            }
            try await cluster.eventually("the watcher to print three changes") {
                ProcessCluster.read(watch.out).split(separator: "\n").count >= 3
            }
            let lines = ProcessCluster.read(watch.out).split(separator: "\n").map {
                $0.split(separator: " ", maxSplits: 1).last ?? ""
            }
            #expect(lines == ["color=red", "color=blue", "color (removed)"])
        }
    }
}

@Suite("make run (scripts/run-cluster.sh)", .serialized)
struct MakeRunTests {
    @Test("the local cluster comes up and answers within a minute, Ctrl-C stops it, and a second run keeps the data")
    func runCluster() async throws {
        let binary = try mapExecutable()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/run-cluster.sh").path
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("bifrost-make-run-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let rpcPorts = try (0..<3).map { _ in try freePort() }
        let httpPorts = try (0..<3).map { _ in try freePort() }

        /// Starts the script, waits for its banner, runs `body`, then sends SIGINT and waits for it to exit.
        func session(_ body: () async throws -> Void) async throws {
            let out = data + "-out-\(UUID())"
            guard FileManager.default.createFile(atPath: out, contents: nil) else {
                throw AppTestError("cannot create \(out)")
            }
            defer { try? FileManager.default.removeItem(atPath: out) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [script, binary.path]
            var environment = ProcessInfo.processInfo.environment
            environment["BIFROST_RUN_DATA"] = data
            environment["BIFROST_RUN_PORTS"] = rpcPorts.map(String.init).joined(separator: ",")
            environment["BIFROST_RUN_HTTP_PORTS"] = httpPorts.map(String.init).joined(separator: ",")
            process.environment = environment
            process.standardOutput = FileHandle(forWritingAtPath: out)
            process.standardError = FileHandle(forWritingAtPath: out)
            // The test's threads block most signals, and a spawned process inherits the mask: bash would never see
            // the Ctrl-C (SIGINT) below. Spawn it with nothing blocked, as a terminal would.
            var unblocked = sigset_t()
            var previous = sigset_t()
            sigemptyset(&unblocked)
            pthread_sigmask(SIG_SETMASK, &unblocked, &previous)
            do {
                try process.run()
                pthread_sigmask(SIG_SETMASK, &previous, nil)
            } catch {
                pthread_sigmask(SIG_SETMASK, &previous, nil)
                throw error
            }
            defer {
                // On a failure: Ctrl-C stops the nodes too; SIGKILL only if the script does not exit in time.
                if process.isRunning {
                    kill(process.processIdentifier, SIGINT)
                    for _ in 0..<300 where process.isRunning { usleep(50_000) }
                    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                    process.waitUntilExit()
                }
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while !ProcessCluster.read(out).contains("Ctrl-C stops the cluster.") {
                guard process.isRunning, ContinuousClock.now < deadline else {
                    throw AppTestError("the cluster did not come up within a minute: \(ProcessCluster.read(out))")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(ProcessCluster.read(out).contains("curl -X PUT http://127.0.0.1:\(httpPorts[0])/v1/kv/greeting"))
            try await body()
            kill(process.processIdentifier, SIGINT)
            let stopDeadline = ContinuousClock.now + .seconds(30)
            while process.isRunning {
                guard ContinuousClock.now < stopDeadline else { throw AppTestError("Ctrl-C did not stop the cluster") }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(ProcessCluster.read(out).contains("stopped; the data stays in"))
            // Every node is down: nothing answers on the HTTP ports.
            for port in httpPorts {
                #expect((try? await RawHTTP.request("GET", "/health", port: port)) == nil)
            }
        }

        try await session {
            let health = try await RawHTTP.request("GET", "/health", port: httpPorts[1])
            #expect(health.status == 200)
            let put = try await RawHTTP.request("PUT", "/v1/kv/kept", port: httpPorts[2], body: Array("yes".utf8))
            #expect(put.status == 200, "\(put.body)")
        }
        try await session {
            let get = try await RawHTTP.request("GET", "/v1/kv/kept", port: httpPorts[0])
            #expect(get.status == 200)
            #expect(try jsonObject(get)["value"] as? String == "yes")
        }
    }
}

@Suite("bifrost-map serve: config file, advertised address, option checks", .serialized)
struct ServeOptionsTests {
    /// Runs `bifrost-map` with `arguments` and returns its process and the paths of its stdout and stderr.
    static func launch(_ arguments: [String], in directory: String) throws -> (Process, out: String, err: String) {
        let out = directory + "/out-\(UUID())"
        let err = directory + "/err-\(UUID())"
        guard FileManager.default.createFile(atPath: out, contents: nil),
            FileManager.default.createFile(atPath: err, contents: nil)
        else { throw AppTestError("cannot create the output files in \(directory)") }
        let process = Process()
        process.executableURL = try mapExecutable()
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        return (process, out, err)
    }

    @Test("options come from a JSON config file; --listen 0.0.0.0 with --advertise is what peers and clients see")
    func configFileAndAdvertise() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bifrost-serve-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try freePort()
        let config = """
            {"name": "n4", "listen": "0.0.0.0:\(port)", "advertise": "127.0.0.1:\(port)", "http": "127.0.0.1:0",
             "data-dir": "\(directory)/data", "log-level": "warning", "snapshot-entries": 500,
             "max-commands-per-entry": 1, "proposal-window-us": 500}
            """
        try config.write(toFile: directory + "/node.json", atomically: true, encoding: .utf8)
        let (process, out, err) = try Self.launch(["serve", "--config", directory + "/node.json"], in: directory)
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        let marker = "HTTP API on http://127.0.0.1:"
        let deadline = ContinuousClock.now + .seconds(15)
        while !ProcessCluster.read(out).contains(marker) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw AppTestError("the node did not start: \(ProcessCluster.read(err))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let output = ProcessCluster.read(out)
        #expect(output.contains("node 4 (n4) ready"))
        let range = try #require(output.range(of: marker))
        let httpPort = try #require(Int(output[range.upperBound...].prefix { $0.isNumber }))
        try await eventually("a leader") {
            (try? await RawHTTP.request("GET", "/health", port: httpPort))?.status == 200
        }
        let cluster = try jsonObject(try await RawHTTP.request("GET", "/v1/cluster", port: httpPort))
        #expect((cluster["node"] as? [String: Any])?["address"] as? String == "127.0.0.1:\(port)")
        #expect((cluster["node"] as? [String: Any])?["id"] as? Int == 4)
    }

    @Test("a bad config file or option stops the node at once with a message naming the problem")
    func badOptions() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bifrost-serve-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #"{"name": "n1", "listen": "127.0.0.1:1", "colour": "blue"}"#.write(
            toFile: directory + "/unknown.json", atomically: true, encoding: .utf8)
        try "[1, 2]".write(toFile: directory + "/array.json", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["serve", "--config", directory + "/unknown.json"], "unknown option 'colour'"),
            (["serve", "--config", directory + "/array.json"], "is not a JSON object"),
            (["serve", "--config", directory + "/missing.json"], "cannot read the config file"),
            (["serve", "--name", "n1", "--listen", "0.0.0.0:7999"], "give --advertise"),
            (["serve", "--name", "n1", "--listen", "127.0.0.1:7999", "--snapshot-entries", "0"], "--snapshot-entries"),
            (["serve", "--name", "n1", "--listen", "127.0.0.1:7999", "--event-loops", "0"], "--event-loops"),
            (
                ["serve", "--name", "n1", "--listen", "127.0.0.1:7999", "--max-commands-per-entry", "0"],
                "--max-commands-per-entry"
            ),
            (["serve", "--name", "n1", "--listen", "127.0.0.1:7999", "--http", "nowhere"], "--http"),
            (
                ["serve", "--name", "n1", "--listen", "127.0.0.1:7999", "--proposal-window-us", "-1"],
                "--proposal-window-us"
            ),
            (
                ["serve", "--name", "n1", "--listen", "127.0.0.1:7999", "--proposal-window-us", "1000001"],
                "--proposal-window-us"
            ),
        ]
        for (arguments, message) in cases {
            let (process, _, err) = try Self.launch(arguments, in: directory)
            let deadline = ContinuousClock.now + .seconds(15)
            while process.isRunning {
                guard ContinuousClock.now < deadline else {
                    kill(process.processIdentifier, SIGKILL)
                    throw AppTestError("\(arguments) did not exit")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(process.terminationStatus != 0, "\(arguments)")
            #expect(ProcessCluster.read(err).contains(message), "\(arguments): \(ProcessCluster.read(err))")
        }
    }
}
