import BifrostRPC
import BifrostRaftCore
import BifrostStorage
import BifrostWire
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

@testable import BifrostRaft

/// A replicated string map used by the node tests: `set(key, value) -> old value`, `get(key) -> value`,
/// `count() -> n`, and `fail()`, which the state machine rejects.
struct TestMap: RaftStateMachine {
    static let id: UInt64 = 1
    static let set: UInt64 = 1
    static let get: UInt64 = 2
    static let count: UInt64 = 3
    static let fail: UInt64 = 4
    static let appliedCount: UInt64 = 5
    /// Raised by `set`: pattern = the key, payload = the new value.
    static let onSet = Subscription<String, String>("onSet")

    var values: [String: String] = [:]
    /// How many commands were applied (a retry applied twice would show here).
    var applies: UInt64 = 0

    mutating func apply(
        function: UInt64, argument: [UInt8], context: RaftApplyContext
    ) throws(RaftStateMachineError)
        -> [UInt8]
    {
        applies += 1
        switch function {
        case Self.set:
            guard let pair = try? Wire.decode([String].self, fromBytes: argument), pair.count == 2 else {
                throw RaftStateMachineError(code: .badArgument, message: "set takes [key, value]")
            }
            let old = values[pair[0]]
            values[pair[0]] = pair[1]
            context.notify(Self.onSet, pattern: pair[0], payload: pair[1])
            return Wire.encodeToBytes(old)
        case Self.fail:
            throw RaftStateMachineError(code: .rejected, message: "always fails")
        default:
            throw RaftStateMachineError(code: .functionNotFound, message: "no command \(function)")
        }
    }

    func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] {
        switch function {
        case Self.get:
            guard let key = try? Wire.decode(String.self, fromBytes: argument) else {
                throw RaftStateMachineError(code: .badArgument, message: "get takes a key")
            }
            return Wire.encodeToBytes(values[key])
        case Self.count: return Wire.encodeToBytes(UInt64(values.count))
        case Self.appliedCount: return Wire.encodeToBytes(applies)
        default: throw RaftStateMachineError(code: .functionNotFound, message: "no query \(function)")
        }
    }

    func snapshot() throws(RaftStateMachineError) -> [UInt8] {
        Wire.encodeToBytes(values.keys.sorted().flatMap { [$0, values[$0] ?? ""] } + ["\(applies)"])
    }

    mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {
        guard let flat = try? Wire.decode([String].self, fromBytes: snapshot), flat.count % 2 == 1,
            let count = UInt64(flat[flat.count - 1])
        else { throw RaftStateMachineError(code: .corruptSnapshot, message: "bad TestMap image") }
        var values: [String: String] = [:]
        for position in stride(from: 0, to: flat.count - 1, by: 2) { values[flat[position]] = flat[position + 1] }
        self.values = values
        self.applies = count
    }
}

/// One member of a test cluster: an RPC server on a loopback address, a RocksDB log and a snapshot directory, a node.
final class TestMember: @unchecked Sendable {
    // @unchecked: mutated only by the test task that owns the cluster (tests drive members sequentially).
    let id: NodeID
    let directory: String
    var port: Int
    var server: RPCServer?
    var database: RaftLogDatabase?
    var snapshots: SnapshotStore?
    var node: RaftNode?
    var extraNodes: [RaftNode] = []
    let rpc: RPCClient

    /// The loopback address this member listens on (see ``TestNodeCluster/host``).
    let host: String

    init(id: NodeID, directory: String, host: String) {
        self.id = id
        self.directory = directory
        self.host = host
        self.port = 0
        var configuration = RPCClientConfiguration()
        configuration.inProcessShortcut = false
        configuration.initialReconnectBackoff = .milliseconds(20)
        configuration.maxReconnectBackoff = .milliseconds(200)
        self.rpc = RPCClient(configuration: configuration)
    }

    var address: String { "\(host):\(port)" }
    var peer: RaftPeer { RaftPeer(id: id, address: address) }
    var isRunning: Bool { node != nil }

    /// Binds the RPC server (on the member's port once it has one, so a restarted member keeps its address).
    func listen() async throws {
        var configuration = RPCServerConfiguration()
        configuration.address = RPCAddress(host: host, port: port)
        configuration.registersInProcess = false
        configuration.shutdownGracePeriod = .milliseconds(200)
        let server = try await RPCServer.start(configuration: configuration, router: RPCRouter())
        self.server = server
        self.port = server.localAddress.port
    }

    func start(_ start: RaftNodeStart, tune: (inout RaftNodeConfiguration) -> Void) async throws {
        if server == nil { try await listen() }
        guard let server else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let database = try RaftLogDatabase(path: directory + "/log")
        let snapshots = try SnapshotStore(directory: directory + "/snapshots")
        var configuration = RaftNodeConfiguration(node: peer)
        configuration.ticks = .every(.milliseconds(20))
        tune(&configuration)
        var logger = Logger(label: "test.raft.\(id)")
        logger.logLevel = ProcessInfo.processInfo.environment["BIFROST_TEST_LOG"] != nil ? .debug : .critical
        self.database = database
        self.snapshots = snapshots
        self.node = try await RaftNode.start(
            configuration: configuration, start: start, database: database, snapshots: snapshots,
            stateMachines: [(TestMap.id, TestMap())], router: server.router, rpc: rpc, logger: logger)
    }

    /// Starts a node of another group on this member's server, database and snapshot store.
    func startGroup(
        _ group: UInt64, peers: [RaftPeer], tune: (inout RaftNodeConfiguration) -> Void
    ) async throws
        -> RaftNode
    {
        guard let server, let database, let snapshots else {
            throw RaftClientError(code: .unavailable, message: "member \(id) is not running")
        }
        var configuration = RaftNodeConfiguration(node: peer)
        configuration.group = group
        configuration.ticks = .every(.milliseconds(20))
        tune(&configuration)
        var logger = Logger(label: "test.raft.\(id).g\(group)")
        logger.logLevel = .critical
        let node = try await RaftNode.start(
            configuration: configuration, start: .bootstrap(peers), database: database, snapshots: snapshots,
            stateMachines: [(TestMap.id, TestMap())], router: server.router, rpc: rpc, logger: logger)
        extraNodes.append(node)
        return node
    }

    /// Stops the node and its server and closes its storage (as a crash would, minus the torn write).
    func stop() async {
        for extra in extraNodes { await extra.shutdown() }
        extraNodes.removeAll()
        await node?.shutdown()
        node = nil
        await server?.shutdown(gracePeriod: .milliseconds(100))
        server = nil
        database?.close()
        database = nil
        snapshots?.close()
        snapshots = nil
    }
}

extension TestMember {
    /// What `body` reads from the running node's driver, on the node's event loop (tests that look inside a
    /// node); nil when the node is stopped.
    func inspectDriver<T: Sendable>(_ body: @escaping @Sendable (RaftDriver) -> T) async throws -> T? {
        guard let node else { return nil }
        let driver = node.driver
        return try await node.loop.submit { body(driver.value) }.get()
    }
}

/// A cluster of ``TestMember``s in one temporary directory, removed (with every server stopped) at the end.
final class TestNodeCluster: @unchecked Sendable {
    // @unchecked: driven by one test task at a time.
    let root: String
    var members: [NodeID: TestMember] = [:]
    let tune: @Sendable (inout RaftNodeConfiguration) -> Void
    /// Each cluster listens on its own loopback address (127.0.0.2 to 127.0.0.254; Linux routes all of 127/8 to
    /// the loopback interface). Members are stopped and restarted on their ports while the others keep sending to
    /// them; were the port reused meanwhile by another test's server on 127.0.0.1, that traffic would reach it.
    let host: String
    static let nextHost = Mutex<Int>(0)

    init(tune: @escaping @Sendable (inout RaftNodeConfiguration) -> Void = { _ in }) throws {
        var template = Array((NSTemporaryDirectory() + "/bifrost-raft-XXXXXX").utf8CString)
        root = try template.withUnsafeMutableBufferPointer { buffer -> String in
            guard let base = buffer.baseAddress, let created = mkdtemp(base) else {
                throw StorageError(code: .io, message: "mkdtemp failed")
            }
            return String(cString: created)
        }
        self.tune = tune
        let n = Self.nextHost.withLock { counter in
            counter += 1
            return counter
        }
        self.host = "127.0.0.\(2 + (n + Int(getpid())) % 253)"
    }

    /// Runs `body` with a bootstrapped cluster of `count` voters, then tears everything down.
    static func with(
        _ count: Int, tune: @escaping @Sendable (inout RaftNodeConfiguration) -> Void = { _ in },
        _ body: (TestNodeCluster) async throws -> Void
    ) async throws {
        let cluster = try TestNodeCluster(tune: tune)
        do {
            try await cluster.bootstrap(count)
            try await body(cluster)
        } catch {
            await cluster.tearDown()
            throw error
        }
        await cluster.tearDown()
    }

    func member(_ id: NodeID) -> TestMember {
        if let member = members[id] { return member }
        let member = TestMember(id: id, directory: root + "/node-\(id)", host: host)
        members[id] = member
        return member
    }

    func bootstrap(_ count: Int) async throws {
        let ids = (1...UInt64(count)).map { $0 }
        for id in ids { try await member(id).listen() }
        let peers = ids.map { member($0).peer }
        for id in ids { try await member(id).start(.bootstrap(peers), tune: tune) }
    }

    var seeds: [String] { members.values.filter(\.isRunning).map(\.address).sorted() }

    func client(_ configure: (inout RaftClientConfiguration) -> Void = { _ in }) -> RaftClient {
        var configuration = RaftClientConfiguration()
        configuration.deadline = .seconds(20)
        configuration.attemptTimeout = .seconds(1)
        configure(&configuration)
        var rpcConfiguration = RPCClientConfiguration()
        rpcConfiguration.inProcessShortcut = false
        rpcConfiguration.initialReconnectBackoff = .milliseconds(20)
        rpcConfiguration.maxReconnectBackoff = .milliseconds(200)
        return RaftClient(seeds: seeds, configuration: configuration, rpc: RPCClient(configuration: rpcConfiguration))
    }

    /// Waits (bounded) until the running members agree on one leader; returns it.
    func waitForLeader(excluding excluded: Set<NodeID> = [], timeout: Duration = .seconds(20)) async throws -> NodeID {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            var leaders = Set<NodeID>()
            var views = 0
            for member in members.values where member.isRunning && !excluded.contains(member.id) {
                guard let info = await member.node?.info() else { continue }
                views += 1
                if let leader = info.leader { leaders.insert(leader.id) }
            }
            if leaders.count == 1, let leader = leaders.first, !excluded.contains(leader),
                members[leader]?.isRunning == true, views > 0
            {
                let info = await members[leader]?.node?.info()
                if info?.role == "leader" { return leader }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RaftClientError(code: .timeout, message: "no leader within \(timeout)")
    }

    /// Waits (bounded) until every running member has applied at least `index`.
    func waitForApplied(_ index: UInt64, timeout: Duration = .seconds(20)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            var lagging = false
            for member in members.values where member.isRunning {
                if let info = await member.node?.info(), info.appliedIndex < index { lagging = true }
            }
            if !lagging { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RaftClientError(code: .timeout, message: "not every member applied \(index) within \(timeout)")
    }

    func tearDown() async {
        for member in members.values { await member.stop() }
        for member in members.values { await member.rpc.shutdown() }
        try? FileManager.default.removeItem(atPath: root)
    }
}

extension RaftClient {
    /// `set(key, value)` on the test map; returns the old value and the entry's index.
    func set(_ key: String, _ value: String) async throws -> (old: String?, index: UInt64) {
        let reply = try await command(
            stateMachine: TestMap.id, function: TestMap.set, argument: Wire.encodeToBytes([key, value]))
        return (try Wire.decode(String?.self, fromBytes: reply.value), reply.index)
    }

    func get(_ key: String, _ consistency: ReadConsistency = .linearizable) async throws -> String? {
        let reply = try await query(
            stateMachine: TestMap.id, function: TestMap.get, argument: Wire.encodeToBytes(key),
            consistency: consistency)
        return try Wire.decode(String?.self, fromBytes: reply.value)
    }
}

extension RaftNode {
    /// Runs `get(key)` on this very node.
    func get(
        _ key: String, _ consistency: ReadConsistency, minIndex: UInt64 = 0
    ) async -> Result<String?, RaftClientError> {
        let reply = await query(
            RaftQueryRequest(
                consistency: consistency, minIndex: minIndex, stateMachine: TestMap.id, function: TestMap.get,
                argument: Wire.encodeToBytes(key)))
        switch reply {
        case .ok(let value, _):
            guard let decoded = try? Wire.decode(String?.self, fromBytes: value) else {
                return .failure(RaftClientError(code: .invalidRequest, message: "undecodable reply"))
            }
            return .success(decoded)
        case .failure(let error): return .failure(error)
        }
    }
}
