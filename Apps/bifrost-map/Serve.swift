import ArgumentParser
import BifrostMap
import BifrostMapHTTP
import BifrostRPC
import BifrostRaft
import BifrostStorage
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `bifrost-map serve`: one node of the replicated map.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node of the replicated map.",
        discussion: """
            Every option may also come from its environment variable, or from a JSON config file (--config, env \
            BIFROST_CONFIG) whose keys are the option names ({"name": "n1", "listen": "127.0.0.1:7001", \
            "http": "127.0.0.1:8001", "peers": "..."}). The command line wins over the environment, which wins \
            over the file.

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

    @Option(
        help: """
            The RPC address peers and clients use to reach this node, host:port (env BIFROST_ADVERTISE). Default: \
            --listen. Required when --listen is a wildcard address (0.0.0.0 or [::]).
            """)
    var advertise: String?

    @Option(help: "Serve the HTTP API on host:port (env BIFROST_HTTP). Default: no HTTP API.")
    var http: String?

    @Option(help: "A JSON file of options (env BIFROST_CONFIG); see above.")
    var config: String?

    @Option(help: "The directory of the node's log and snapshots (env BIFROST_DATA_DIR). Default: ./data/<name>.")
    var dataDir: String?

    @Option(help: "The founding members, id@host:port,..., used on the first start only (env BIFROST_PEERS).")
    var peers: String?

    @Option(help: "Seeds of a running cluster to join, host:port,..., used on the first start only (env BIFROST_JOIN).")
    var join: String?

    @Option(
        help: """
            The number of event-loop threads for the RPC, the Raft groups and the HTTP API (env \
            BIFROST_EVENT_LOOPS). Default: 1. The node's one Raft group runs on one loop, so more loops only add \
            hand-offs between threads (see docs/benchmarks.md).
            """)
    var eventLoops: Int?

    @Option(
        help: """
            Snapshot the state machines every this many applied entries (env BIFROST_SNAPSHOT_ENTRIES). \
            Default: 100000 (etcd's --snapshot-count).
            """)
    var snapshotEntries: UInt64?

    @Option(
        help: """
            The most client commands the leader packs into one log entry (env BIFROST_MAX_COMMANDS_PER_ENTRY). \
            1 gives every command an entry of its own, which nodes older than batch entries can read: use it while \
            such nodes are still in the group. Default: 256.
            """)
    var maxCommandsPerEntry: Int?

    @Option(
        help: """
            After the leader answers a batch, how long it may wait for those clients' next commands before it \
            proposes again, in microseconds (env BIFROST_PROPOSAL_WINDOW_US). 0 proposes every command as soon as \
            it arrives: use it for traffic that does not come back at once, which the window only delays \
            (docs/operations.md). Default: 1000.
            """)
    var proposalWindowUs: Int?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env BIFROST_LOG_LEVEL). Default: info.")
    var logLevel: String?

    func run() async throws {
        let file = try Support.configFile(Support.option(config, env: "BIFROST_CONFIG"))
        func value(_ option: String?, _ env: String, _ key: String) -> String? {
            Support.option(option, env: env, fallback: file[key])
        }
        guard let name = value(name, "BIFROST_NAME", "name") else {
            throw ValidationError("--name (or BIFROST_NAME) is required")
        }
        guard let id = Support.nodeID(fromName: name) else {
            throw ValidationError("--name '\(name)' is not a positive node id or a name ending in one (n1)")
        }
        guard let listen = value(listen, "BIFROST_LISTEN", "listen"), let address = RPCAddress(listen),
            Support.isAddress(listen)
        else {
            throw ValidationError("--listen (or BIFROST_LISTEN) must be host:port")
        }
        let advertised = value(advertise, "BIFROST_ADVERTISE", "advertise") ?? listen
        guard Support.isAddress(advertised) else { throw ValidationError("--advertise must be host:port") }
        guard !Support.isWildcard(advertised) else {
            throw ValidationError("--listen \(listen) is a wildcard address: give --advertise host:port")
        }
        let httpText = value(http, "BIFROST_HTTP", "http")
        var httpAddress: (host: String, port: Int)?
        if let httpText {
            guard let parsed = Support.hostAndPort(httpText) else {
                throw ValidationError("--http must be host:port (port 0: any free port)")
            }
            httpAddress = parsed
        }
        var loops = 1
        if let text = value(eventLoops.map(String.init), "BIFROST_EVENT_LOOPS", "event-loops") {
            guard let parsed = Int(text), (1...256).contains(parsed) else {
                throw ValidationError("--event-loops must be in 1...256, not \(text)")
            }
            loops = parsed
        }
        // Read once, when the singleton group is first used (below).
        NIOSingletons.groupLoopCountSuggestion = loops
        let me = RaftPeer(id: id, address: advertised)
        var nodeConfiguration = RaftNodeConfiguration(node: me)
        if let text = value(snapshotEntries.map(String.init), "BIFROST_SNAPSHOT_ENTRIES", "snapshot-entries") {
            guard let entries = UInt64(text), entries >= 1 else {
                throw ValidationError("--snapshot-entries must be a positive integer, not \(text)")
            }
            nodeConfiguration.snapshotEntries = entries
        }
        if let text = value(
            maxCommandsPerEntry.map(String.init), "BIFROST_MAX_COMMANDS_PER_ENTRY", "max-commands-per-entry")
        {
            guard let count = Int(text), count >= 1 else {
                throw ValidationError("--max-commands-per-entry must be a positive integer, not \(text)")
            }
            nodeConfiguration.maxCommandsPerEntry = count
        }
        if let text = value(
            proposalWindowUs.map(String.init), "BIFROST_PROPOSAL_WINDOW_US", "proposal-window-us")
        {
            guard let micros = UInt64(text), micros <= 1_000_000 else {
                throw ValidationError("--proposal-window-us must be in 0...1000000, not \(text)")
            }
            nodeConfiguration.proposalWindow.maxWait = micros * 1000
        }
        let dataDir = value(dataDir, "BIFROST_DATA_DIR", "data-dir") ?? "./data/\(name)"
        let peersText = value(peers, "BIFROST_PEERS", "peers")
        let joinText = value(join, "BIFROST_JOIN", "join")
        let level = try Support.bootstrapLogging(level: value(logLevel, "BIFROST_LOG_LEVEL", "log-level") ?? "info")
        var logger = Logger(label: "bifrost-map")
        logger.logLevel = level
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { name, labels in
            (Support.metricName(name), labels.map { (Support.metricName($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)

        let start: RaftNodeStart
        switch (peersText, joinText) {
        case (.some, .some):
            throw ValidationError("give --peers (found a cluster) or --join (join one), not both")
        case (.some(let text), nil):
            let peers = try Support.peers(text)
            guard peers.contains(where: { $0.id == id }) else {
                throw ValidationError("--peers must include this node (\(id)@\(advertised))")
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
        // Closed before the process exits: a database still open (or closing on another thread) while the C++
        // runtime runs its static destructors can abort the process after "stopped" ("pthread lock: Invalid
        // argument", RocksDB's shared timer). Its writes were synced; the exit status was not clean.
        var database: RaftLogDatabase?
        defer { database?.close() }
        do {
            let opened = try RaftLogDatabase(path: dataDir + "/log")
            database = opened
            node = try await RaftNode.start(
                configuration: nodeConfiguration,
                start: start,
                database: opened,
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
        var services: [any Service] = [server, node]
        var client: RaftClient?
        if let httpAddress {
            var clientConfiguration = RaftClientConfiguration()
            clientConfiguration.preferredNode = advertised
            clientConfiguration.deadline = .seconds(10)
            var seeds = [advertised]
            if case .bootstrap(let peers) = start { seeds += peers.map(\.address).filter { $0 != advertised } }
            let raft = RaftClient(seeds: seeds, configuration: clientConfiguration, rpc: rpc, logger: logger)
            client = raft
            let api = MapHTTPAPI(node: node, client: raft, registry: registry)
            let app = Application(
                router: api.router(),
                configuration: ApplicationConfiguration(
                    address: .hostname(httpAddress.host, port: httpAddress.port), serverName: "bifrost-map"),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? httpAddress.port
                    Support.out("bifrost-map: node \(id) HTTP API on http://\(httpAddress.host):\(port)")
                },
                logger: logger)
            if loops == 1 {
                // The HTTP API's connection tasks run on the node's one event loop, where its channels already
                // are: a request and its call into the Raft group then take no thread hop (the endpoints with
                // large bodies move their work off the loop themselves). docs/benchmarks.md, session 17.
                let loop = MultiThreadedEventLoopGroup.singleton.next()
                services.append(PreferringExecutor(base: app, executor: EventLoopTaskExecutor(loop)))
            } else {
                services.append(app)
            }
        }
        // Shutdown runs in reverse order: the HTTP API stops first, then the node, then the RPC server.
        let group = ServiceGroup(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: logger)
        Support.out(
            "bifrost-map: node \(id) (\(name)) ready on \(server.localAddress), data in \(dataDir), "
                + "allocator \(Allocator.describe())")
        defer { Support.err("bifrost-map: node \(id) stopped") }
        do {
            try await group.run()
        } catch {
            await client?.close()
            await rpc.shutdown()
            throw error
        }
        await client?.close()
        await rpc.shutdown()
    }
}

/// Runs `base` with its tasks (and their child tasks, such as a server's connection handlers) preferring
/// `executor`.
struct PreferringExecutor: Service {
    let base: any Service
    let executor: any TaskExecutor

    func run() async throws {
        try await withTaskExecutorPreference(executor) { try await base.run() }
    }
}
