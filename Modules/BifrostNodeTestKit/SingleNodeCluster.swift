import BifrostRPC
import BifrostRaft
import BifrostStorage
import Foundation

/// A one-node Raft cluster on 127.0.0.1 for tests: an RPC server on a free port, a RocksDB log and a snapshot
/// store in a fresh temporary directory, the given state machines, and a ``RaftClient`` of it. The node is the
/// leader when `body` starts; everything is shut down and the directory removed when it ends, also on errors.
public struct SingleNodeCluster: Sendable {
    /// The node's RPC address, `127.0.0.1:port`.
    public let address: String
    /// The node.
    public let node: RaftNode
    /// A client of the cluster (closed at the end).
    public let client: RaftClient

    /// Runs `body` with a fresh cluster running `stateMachines`.
    public static func with<Result>(
        stateMachines: [(UInt64, any RaftStateMachine)],
        _ body: (SingleNodeCluster) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("bifrost-node-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var serverConfiguration = RPCServerConfiguration()
        serverConfiguration.address = RPCAddress(host: "127.0.0.1", port: 0)
        serverConfiguration.registersInProcess = false
        let server = try await RPCServer.start(configuration: serverConfiguration, router: RPCRouter())
        let rpc = RPCClient()
        var database: RaftLogDatabase?
        var snapshots: SnapshotStore?
        var node: RaftNode?
        var client: RaftClient?
        func cleanUp() async {
            await client?.close()
            await node?.shutdown()
            await server.shutdown(gracePeriod: .milliseconds(100))
            await rpc.shutdown()
            database?.close()
            snapshots?.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        do {
            let address = "127.0.0.1:\(server.localAddress.port)"
            let peer = RaftPeer(id: 1, address: address)
            let openedDatabase = try RaftLogDatabase(path: directory + "/log")
            database = openedDatabase
            let openedSnapshots = try SnapshotStore(directory: directory + "/snapshots")
            snapshots = openedSnapshots
            var configuration = RaftNodeConfiguration(node: peer)
            configuration.ticks = .every(.milliseconds(20))
            let started = try await RaftNode.start(
                configuration: configuration, start: .bootstrap([peer]), database: openedDatabase,
                snapshots: openedSnapshots, stateMachines: stateMachines, router: server.router, rpc: rpc)
            node = started
            let deadline = ContinuousClock.now + .seconds(20)
            while await started.info().role != "leader" {
                guard ContinuousClock.now < deadline else {
                    throw RaftClientError(code: .timeout, message: "the single node did not become leader")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let raft = RaftClient(seeds: [address])
            client = raft
            let result = try await body(SingleNodeCluster(address: address, node: started, client: raft))
            await cleanUp()
            return result
        } catch {
            await cleanUp()
            throw error
        }
    }
}
