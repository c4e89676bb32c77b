import BifrostRPC
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `bifrost-map serve` process of a ``SpawnedCluster``.
public struct SpawnedNode: Sendable, Equatable {
    /// The node id (1, 2, ...).
    public var id: Int
    /// Its RPC address, `127.0.0.1:port`.
    public var address: String
    /// Its HTTP API address, `127.0.0.1:port`.
    public var httpAddress: String
    /// Its process id.
    public var pid: Int32
    /// The file its stdout and stderr go to.
    public var log: String
}

/// A local cluster of `bifrost-map serve` processes on 127.0.0.1, with free ports and every node's data and log
/// in a fresh temporary directory (`$TMPDIR/bifrost-loadgen-XXXXXX`). ``stop(grace:)`` ends the processes
/// (SIGTERM, then SIGKILL after the grace period) and removes the directory.
///
/// The processes are spawned with `posix_spawn` in a process group of their own, so a Ctrl-C in the terminal
/// reaches only the load generator, which then stops them in order. Nothing stops them if the load generator
/// itself is killed with SIGKILL.
public final class SpawnedCluster: Sendable {
    /// The temporary directory.
    public let directory: String
    /// The `bifrost-map` binary.
    public let binary: String
    /// The nodes, by id.
    public let nodes: [SpawnedNode]
    /// Processes already reaped (by ``exitedNode()`` or ``stop(grace:)``), with their wait status.
    private let reaped = Mutex<[Int32: Int32]>([:])

    private init(directory: String, binary: String, nodes: [SpawnedNode]) {
        self.directory = directory
        self.binary = binary
        self.nodes = nodes
    }

    /// The RPC addresses of the nodes.
    public var addresses: [String] { nodes.map(\.address) }

    /// The HTTP API addresses of the nodes.
    public var httpAddresses: [String] { nodes.map(\.httpAddress) }

    /// The resident memory of every node still running, from `/proc/<pid>/status` (Linux; empty elsewhere).
    public func memory() -> [NodeMemory] {
        nodes.compactMap { node in
            guard let status = try? String(contentsOfFile: "/proc/\(node.pid)/status", encoding: .utf8) else {
                return nil
            }
            return NodeMemory(status: status, node: node.id)
        }
    }

    /// Finds the `bifrost-map` binary: `explicit` (`--map-binary`), else `$BIFROST_MAP_BINARY`, else next to
    /// this executable (`/proc/self/exe`'s directory, then `argv[0]`'s).
    public static func findMapBinary(explicit: String?) throws(LoadError) -> String {
        var candidates: [String] = []
        if let explicit, !explicit.isEmpty {
            candidates.append(explicit)
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["BIFROST_MAP_BINARY"],
            !fromEnvironment.isEmpty
        {
            candidates.append(fromEnvironment)
        } else {
            if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
                candidates.append(
                    URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("bifrost-map")
                        .path)
            }
            if let argument0 = CommandLine.arguments.first {
                candidates.append(
                    URL(fileURLWithPath: argument0).resolvingSymlinksInPath().deletingLastPathComponent()
                        .appendingPathComponent("bifrost-map").path)
            }
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw LoadError(
            kind: "setup",
            message: "no bifrost-map binary (looked at \(candidates.joined(separator: ", "))); build it with "
                + "`swift build --product bifrost-map`, or give --map-binary PATH or BIFROST_MAP_BINARY")
    }

    /// Starts `count` nodes founding one cluster. On failure nothing is left running and the directory is gone.
    public static func start(
        count: Int, binary: String, logLevel: String = "warning"
    ) throws(LoadError) -> SpawnedCluster {
        let directory = try makeTemporaryDirectory()
        var ports: [Int] = []
        do {
            // An RPC and an HTTP port per node.
            for _ in 0..<(2 * count) { ports.append(try freePort(avoiding: ports)) }
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let addresses = ports.prefix(count).map { "127.0.0.1:\($0)" }
        let httpAddresses = ports.suffix(count).map { "127.0.0.1:\($0)" }
        let peers = addresses.enumerated().map { "\($0.offset + 1)@\($0.element)" }.joined(separator: ",")
        var nodes: [SpawnedNode] = []
        for (index, address) in addresses.enumerated() {
            let id = index + 1
            let log = "\(directory)/n\(id).log"
            let arguments = [
                binary, "serve", "--name", "n\(id)", "--listen", address, "--data-dir", "\(directory)/n\(id)",
                "--peers", peers, "--http", httpAddresses[index], "--log-level", logLevel,
            ]
            do {
                let pid = try spawn(arguments, log: log)
                nodes.append(
                    SpawnedNode(id: id, address: address, httpAddress: httpAddresses[index], pid: pid, log: log))
            } catch {
                let partial = SpawnedCluster(directory: directory, binary: binary, nodes: nodes)
                partial.killNow()
                throw error
            }
        }
        return SpawnedCluster(directory: directory, binary: binary, nodes: nodes)
    }

    /// A description of the first node that has exited (with the end of its log), or `nil` while all run.
    public func exitedNode() -> String? {
        for node in nodes {
            if let status = reap(node.pid, blocking: false) {
                return
                    "bifrost-map node \(node.id) (pid \(node.pid)) exited (\(Self.describe(status))); the end of its "
                    + "log:\n" + Self.tail(of: node.log, lines: 20)
            }
        }
        return nil
    }

    /// Stops every node: SIGTERM, then SIGKILL for those still running after `grace`; then removes the directory.
    /// Returns the nodes that needed SIGKILL. Runs to the end even when the calling task is cancelled.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) async -> [Int] {
        await Task.detached { [self] in
            for node in nodes where reap(node.pid, blocking: false) == nil {
                kill(node.pid, SIGTERM)
            }
            let deadline = ContinuousClock.now + grace
            var running = nodes.filter { reap($0.pid, blocking: false) == nil }
            while !running.isEmpty, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
                running = running.filter { reap($0.pid, blocking: false) == nil }
            }
            for node in running {
                kill(node.pid, SIGKILL)
                _ = reap(node.pid, blocking: true)
            }
            try? FileManager.default.removeItem(atPath: directory)
            return running.map(\.id)
        }.value
    }

    /// SIGKILLs every node, waits for them and removes the directory (for failures during start).
    func killNow() {
        for node in nodes where reap(node.pid, blocking: false) == nil {
            kill(node.pid, SIGKILL)
            _ = reap(node.pid, blocking: true)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The wait status of `pid` once it has exited (reaping it), or `nil` while it runs.
    private func reap(_ pid: Int32, blocking: Bool) -> Int32? {
        reaped.withLock { reaped -> Int32? in
            if let status = reaped[pid] { return status }
            var status: Int32 = 0
            while true {
                let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
                if result == pid {
                    reaped[pid] = status
                    return status
                }
                if result == -1 && errno == EINTR { continue }
                if result == -1 {
                    // Not our child any more (or never was): treat it as gone.
                    reaped[pid] = -1
                    return -1
                }
                return nil
            }
        }
    }

    /// A wait status as `exit code N` or `signal N`.
    static func describe(_ status: Int32) -> String {
        if status == -1 { return "already reaped" }
        let signal = status & 0x7F
        if signal == 0 { return "exit code \((status >> 8) & 0xFF)" }
        return "signal \(signal)"
    }

    /// The last `lines` lines of the file at `path`.
    static func tail(of path: String, lines: Int) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "(no log)" }
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// A fresh directory `$TMPDIR/bifrost-loadgen-XXXXXX` (mode 0700).
    static func makeTemporaryDirectory() throws(LoadError) -> String {
        var base = FileManager.default.temporaryDirectory.path
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        var template = Array("\(base)/bifrost-loadgen-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let pointer = buffer.baseAddress else { return false }
            return mkdtemp(pointer) != nil
        }
        guard made else {
            throw LoadError(kind: "setup", message: "cannot create a temporary directory in \(base): errno \(errno)")
        }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A TCP port on 127.0.0.1 that nobody listens on right now (bound to port 0, then released), not in
    /// `avoiding`.
    static func freePort(avoiding: [Int]) throws(LoadError) -> Int {
        for _ in 0..<100 {
            let port: Int
            do {
                port = try RPCAddress.freeLoopbackPort()
            } catch {
                throw LoadError(kind: "setup", message: error.message)
            }
            if !avoiding.contains(port) { return port }
        }
        throw LoadError(kind: "setup", message: "no free port found")
    }

    /// Starts `arguments[0]` with `arguments`, stdin from /dev/null, stdout and stderr to `log`, in a new process
    /// group, with SIGINT and SIGTERM at their default actions and no signal blocked. Returns the pid.
    static func spawn(_ arguments: [String], log: String) throws(LoadError) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw LoadError(
                kind: "setup", message: "cannot start \(arguments[0]): \(String(cString: strerror(result)))")
        }
        return pid
    }
}
