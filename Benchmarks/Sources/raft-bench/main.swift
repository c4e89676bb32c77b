// Durable write throughput of a 3-node Raft cluster on loopback, next to the disk's fsync rate measured in the
// same run (the ceiling a single synced write stream would have without batching).
//
//   swift run -c release raft-bench [seconds=10] [clients=64] [connections=8] [valueBytes=100] [snapshotEntries=20000]
//
// Three RaftNodes run in this process, each with its own RPC server on 127.0.0.1 (real sockets: the in-process
// shortcut is off), its own RocksDB log and snapshot directory in a temporary directory, and synced writes.
// `clients` tasks each run a closed loop of `set(16-byte key, value)` commands with sessions (exactly-once), spread
// over `connections` RaftClients (one RPC connection per node each).

import BifrostRPC
import BifrostRaft
import BifrostRaftCore
import BifrostStorage
import Foundation
import Histogram
import Logging

struct BenchMap: RaftStateMachine {
    var values: [[UInt8]: [UInt8]] = [:]

    mutating func apply(
        function: UInt64, argument: [UInt8], context: RaftApplyContext
    ) throws(RaftStateMachineError)
        -> [UInt8]
    {
        guard argument.count >= 16 else { throw RaftStateMachineError(code: .badArgument, message: "short") }
        values[Array(argument[0..<16])] = Array(argument[16...])
        return []
    }

    func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] {
        values[argument] ?? []
    }

    func snapshot() throws(RaftStateMachineError) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in values.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            out += key
            out += withUnsafeBytes(of: UInt32(value.count).littleEndian, Array.init)
            out += value
        }
        return out
    }

    mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {
        var values: [[UInt8]: [UInt8]] = [:]
        var position = 0
        while position < snapshot.count {
            guard position + 20 <= snapshot.count else {
                throw RaftStateMachineError(code: .corruptSnapshot, message: "truncated")
            }
            let key = Array(snapshot[position..<(position + 16)])
            var length = 0
            for offset in 0..<4 { length |= Int(snapshot[position + 16 + offset]) << (8 * offset) }
            position += 20
            guard position + length <= snapshot.count else {
                throw RaftStateMachineError(code: .corruptSnapshot, message: "truncated")
            }
            values[key] = Array(snapshot[position..<(position + length)])
            position += length
        }
        self.values = values
    }
}

func temporaryDirectory() -> String {
    var template = Array((NSTemporaryDirectory() + "/raft-bench-XXXXXX").utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

/// fdatasync calls per second on a 4 KiB overwrite, in `directory`, for `seconds`.
func fsyncRate(in directory: String, seconds: Double) -> Double {
    let path = directory + "/fsync-probe"
    let fd = open(path, O_RDWR | O_CREAT, 0o644)
    defer {
        close(fd)
        unlink(path)
    }
    let block = [UInt8](repeating: 7, count: 4096)
    let start = Date()
    var count = 0
    while Date().timeIntervalSince(start) < seconds {
        _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 0) }
        fdatasync(fd)
        count += 1
    }
    return Double(count) / Date().timeIntervalSince(start)
}

let arguments = CommandLine.arguments
let seconds = arguments.count > 1 ? Double(arguments[1]) ?? 10 : 10
let clients = arguments.count > 2 ? Int(arguments[2]) ?? 64 : 64
let connections = arguments.count > 3 ? Int(arguments[3]) ?? 8 : 8
let valueBytes = arguments.count > 4 ? Int(arguments[4]) ?? 100 : 100
let snapshotEntries = arguments.count > 5 ? UInt64(arguments[5]) ?? 20_000 : 20_000

let root = temporaryDirectory()
defer { try? FileManager.default.removeItem(atPath: root) }
let fsyncs = fsyncRate(in: root, seconds: 2)
print(String(format: "disk: %.0f fdatasync/s (4 KiB overwrite, %@)", fsyncs, root))

let logger: Logger = {
    var logger = Logger(label: "raft-bench")
    logger.logLevel = .error
    return logger
}()

var servers: [RPCServer] = []
for _ in 0..<3 {
    var configuration = RPCServerConfiguration()
    configuration.registersInProcess = false
    servers.append(try await RPCServer.start(configuration: configuration, router: RPCRouter(), logger: logger))
}
let peers = servers.enumerated().map { RaftPeer(id: UInt64($0.offset + 1), address: "\($0.element.localAddress)") }
var nodes: [RaftNode] = []
var rpcClients: [RPCClient] = []
for (offset, server) in servers.enumerated() {
    var rpcConfiguration = RPCClientConfiguration()
    rpcConfiguration.inProcessShortcut = false
    let rpc = RPCClient(configuration: rpcConfiguration, logger: logger)
    rpcClients.append(rpc)
    let directory = root + "/node-\(offset + 1)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var configuration = RaftNodeConfiguration(node: peers[offset])
    configuration.syncWrites = true
    configuration.snapshotEntries = snapshotEntries
    nodes.append(
        try await RaftNode.start(
            configuration: configuration, start: .bootstrap(peers),
            database: try RaftLogDatabase(path: directory + "/log"),
            snapshots: try SnapshotStore(directory: directory + "/snapshots"),
            stateMachines: [(1, BenchMap())], router: server.router, rpc: rpc, logger: logger))
}

// Wait for a leader.
var leaderFound = false
for _ in 0..<500 where !leaderFound {
    for node in nodes where await node.info().role == "leader" { leaderFound = true }
    if !leaderFound { try await Task.sleep(for: .milliseconds(10)) }
}
guard leaderFound else { fatalError("no leader elected") }

func makeClients(_ count: Int) -> [RaftClient] {
    (0..<count).map { _ in
        var rpcConfiguration = RPCClientConfiguration()
        rpcConfiguration.inProcessShortcut = false
        var configuration = RaftClientConfiguration()
        configuration.deadline = .seconds(30)
        return RaftClient(
            seeds: peers.map(\.address), configuration: configuration,
            rpc: RPCClient(configuration: rpcConfiguration, logger: logger), logger: logger)
    }
}

/// Runs `workers` closed-loop writers for `duration` seconds; returns (ops, errors, histogram in µs).
func run(
    workers: Int, over raftClients: [RaftClient], duration: Double, record: Bool
) async -> (Int, Int, Histogram<UInt64>) {
    let stop = Date().addingTimeInterval(duration)
    return await withTaskGroup(of: (Int, Int, Histogram<UInt64>).self) { group in
        for worker in 0..<workers {
            let client = raftClients[worker % raftClients.count]
            group.addTask {
                var histogram = Histogram<UInt64>(
                    highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                var ops = 0
                var errors = 0
                var counter = UInt64(worker) << 40
                let value = [UInt8](repeating: UInt8(truncatingIfNeeded: worker), count: valueBytes)
                while Date() < stop {
                    counter &+= 1
                    var key = withUnsafeBytes(of: counter.bigEndian, Array.init)
                    key += withUnsafeBytes(of: UInt64(worker).bigEndian, Array.init)
                    let started = DispatchTime.now().uptimeNanoseconds
                    do {
                        _ = try await client.command(stateMachine: 1, function: 1, argument: key + value)
                        ops += 1
                        if record { histogram.record((DispatchTime.now().uptimeNanoseconds - started) / 1000) }
                    } catch {
                        errors += 1
                    }
                }
                return (ops, errors, histogram)
            }
        }
        var total = 0
        var errors = 0
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for await (ops, failed, histogram) in group {
            total += ops
            errors += failed
            merged.add(histogram)
        }
        return (total, errors, merged)
    }
}

func report(_ label: String, _ result: (Int, Int, Histogram<UInt64>), _ duration: Double) -> Double {
    let (ops, errors, histogram) = result
    let rate = Double(ops) / duration
    print(
        String(
            format:
                "%@: %.0f writes/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, errors %d; %.1f× the fsync rate",
            label, rate, Double(histogram.valueAtPercentile(50)) / 1000, Double(histogram.valueAtPercentile(99)) / 1000,
            Double(histogram.valueAtPercentile(99.9)) / 1000, Double(histogram.max) / 1000, errors, rate / fsyncs))
    return rate
}

let single = makeClients(1)
_ = await run(workers: 1, over: single, duration: 1, record: false)
_ = report("c=1", await run(workers: 1, over: single, duration: seconds / 2, record: true), seconds / 2)

let many = makeClients(connections)
_ = await run(workers: clients, over: many, duration: 2, record: false)
_ = report(
    "c=\(clients)/\(connections) conns", await run(workers: clients, over: many, duration: seconds, record: true),
    seconds)

for client in single + many { await client.close() }
for node in nodes { await node.shutdown() }
for server in servers { await server.shutdown() }
for rpc in rpcClients { await rpc.shutdown() }
