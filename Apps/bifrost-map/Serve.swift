import ArgumentParser
import BifrostMap
import BifrostRPC
import BifrostRaft
import BifrostStorage
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `bifrost-map serve`: one node of the replicated map.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node of the replicated map.",
        discussion: """
            Every option may also come from its environment variable (the command line wins).

            The node id comes from --name: a positive integer is the id ("3"), otherwise the digits the name ends \
            with ("n1" is node 1, "node-12" is node 12). Ids are unique in the cluster.

            The first start with an empty --data-dir founds a cluster with --peers (every founding node gets the \
            same list, itself included), or joins a running one through --join. With neither, it founds a \
            single-node cluster. A node restarted on the same data dir recovers its state from disk and ignores \
            --peers and --join. SIGINT or SIGTERM stop it gracefully.
            """
    )

    @Option(help: "The node name or id, e.g. n1 or 1 (env BIFROST_NAME).")
    var name: String?

    @Option(
        help: "The RPC address to listen on, host:port; peers and clients reach the node there (env BIFROST_LISTEN).")
    var listen: String?

    @Option(help: "The directory of the node's log and snapshots (env BIFROST_DATA_DIR). Default: ./data/<name>.")
    var dataDir: String?

    @Option(help: "The founding members, id@host:port,..., used on the first start only (env BIFROST_PEERS).")
    var peers: String?

    @Option(help: "Seeds of a running cluster to join, host:port,..., used on the first start only (env BIFROST_JOIN).")
    var join: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env BIFROST_LOG_LEVEL). Default: info.")
    var logLevel: String?

    func run() async throws {
        guard let name = Support.option(name, env: "BIFROST_NAME") else {
            throw ValidationError("--name (or BIFROST_NAME) is required")
        }
        guard let id = Support.nodeID(fromName: name) else {
            throw ValidationError("--name '\(name)' is not a positive node id or a name ending in one (n1)")
        }
        guard let listen = Support.option(listen, env: "BIFROST_LISTEN"), let address = RPCAddress(listen),
            Support.isAddress(listen)
        else {
            throw ValidationError("--listen (or BIFROST_LISTEN) must be host:port")
        }
        let dataDir = Support.option(dataDir, env: "BIFROST_DATA_DIR", fallback: "./data/\(name)") ?? "./data/\(name)"
        let peersText = Support.option(peers, env: "BIFROST_PEERS")
        let joinText = Support.option(join, env: "BIFROST_JOIN")
        let level = try Support.bootstrapLogging(
            level: Support.option(logLevel, env: "BIFROST_LOG_LEVEL", fallback: "info") ?? "info")
        var logger = Logger(label: "bifrost-map")
        logger.logLevel = level

        let me = RaftPeer(id: id, address: listen)
        let start: RaftNodeStart
        switch (peersText, joinText) {
        case (.some, .some):
            throw ValidationError("give --peers (found a cluster) or --join (join one), not both")
        case (.some(let text), nil):
            let peers = try Support.peers(text)
            guard peers.contains(where: { $0.id == id }) else {
                throw ValidationError("--peers must include this node (\(id)@\(listen))")
            }
            start = .bootstrap(peers)
        case (nil, .some(let text)):
            start = .join(seeds: try Support.addresses(text))
        case (nil, nil):
            start = .bootstrap([me])
        }

        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        var serverConfiguration = RPCServerConfiguration()
        serverConfiguration.address = address
        let server = try await RPCServer.start(configuration: serverConfiguration, logger: logger)
        let rpc = RPCClient()
        let node: RaftNode
        do {
            node = try await RaftNode.start(
                configuration: RaftNodeConfiguration(node: me),
                start: start,
                database: try RaftLogDatabase(path: dataDir + "/log"),
                snapshots: try SnapshotStore(directory: dataDir + "/snapshots"),
                stateMachines: [
                    (ReplicatedMap.defaultID, ReplicatedMap()), (ReplicatedValue.defaultID, ReplicatedValue()),
                    (ReplicatedNumber.defaultID, ReplicatedNumber()),
                ],
                router: server.router,
                rpc: rpc,
                logger: logger)
        } catch {
            await server.shutdown(gracePeriod: .milliseconds(100))
            await rpc.shutdown()
            throw error
        }
        // Shutdown runs in reverse order: the node stops first, then the server.
        let group = ServiceGroup(
            services: [server, node], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: logger)
        Support.out("bifrost-map: node \(id) (\(name)) ready on \(server.localAddress), data in \(dataDir)")
        defer { Support.err("bifrost-map: node \(id) stopped") }
        do {
            try await group.run()
        } catch {
            await rpc.shutdown()
            throw error
        }
        await rpc.shutdown()
    }
}
