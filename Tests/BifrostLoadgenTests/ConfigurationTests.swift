import BifrostLoadgenKit
import BifrostRaft
import Testing

@Suite("Argument validation")
struct ConfigurationTests {
    @Test("the defaults: write, map, native, spawned 3 nodes, 64 clients over 8 connections, closed loop")
    func defaults() throws {
        let configuration = try CommandLineOptions().configuration()
        #expect(configuration.workload == .write)
        #expect(configuration.stateMachine == .map)
        #expect(configuration.protocolKind == .native)
        #expect(configuration.cluster == .spawn(nodes: 3))
        #expect(configuration.clients == 64)
        #expect(configuration.connections == 8)
        #expect(configuration.pipeline == 1)
        #expect(configuration.effectiveDistribution == .uniform)
        #expect(configuration.keyspace == 100_000)
        #expect(configuration.keySize == 16)
        #expect(configuration.valueSize == 100)
        #expect(configuration.consistency == .linearizable)
        #expect(configuration.target == .leader)
        #expect(configuration.rate == nil)
        #expect(configuration.warmup == 2)
        #expect(configuration.duration == 10)
    }

    @Test("good combinations are accepted")
    func accepted() throws {
        var options = CommandLineOptions()
        options.workload = "mixed"
        options.readRatio = 0.9
        options.cluster = "127.0.0.1:7001, 127.0.0.1:7002"
        options.consistency = "stale"
        options.target = "all"
        options.rate = 5000
        options.distribution = "sequential"
        options.pipeline = 4
        let configuration = try options.configuration()
        #expect(configuration.cluster == .external(["127.0.0.1:7001", "127.0.0.1:7002"]))
        #expect(configuration.effectiveReadRatio == 0.9)
        #expect(configuration.lanes == 256)

        var http = CommandLineOptions()
        http.protocolName = "http"
        http.http = "127.0.0.1:8080"
        #expect(try http.configuration().cluster == .external(["127.0.0.1:8080"]))

        var spawned = CommandLineOptions()
        spawned.spawnCluster = 5
        spawned.stateMachine = "number"
        spawned.workload = "ycsb-f"
        #expect(try spawned.configuration().cluster == .spawn(nodes: 5))

        // More connections than clients: one per client.
        var single = CommandLineOptions()
        single.clients = 1
        #expect(try single.configuration().connections == 1)
    }

    /// One bad option each, and a word its error message must contain.
    static let rejected: [(String, @Sendable (inout CommandLineOptions) -> Void, String)] = [
        ("unknown workload", { $0.workload = "ycsb-z" }, "--workload"),
        ("unknown state machine", { $0.stateMachine = "queue" }, "--state-machine"),
        ("unknown protocol", { $0.protocolName = "grpc" }, "--protocol"),
        ("unknown distribution", { $0.distribution = "gaussian" }, "--distribution"),
        ("unknown consistency", { $0.consistency = "strong" }, "--consistency"),
        ("unknown target", { $0.target = "followers" }, "--target"),
        ("zero clients", { $0.clients = 0 }, "--clients"),
        ("negative clients", { $0.clients = -3 }, "--clients"),
        ("zero connections", { $0.connections = 0 }, "--connections"),
        ("zero pipeline", { $0.pipeline = 0 }, "--pipeline"),
        ("huge pipeline", { $0.pipeline = 5000 }, "--pipeline"),
        ("empty keyspace", { $0.keyspace = 0 }, "--keyspace"),
        ("key too short for the keyspace", { $0.keySize = 5 }, "--key-size"),
        ("negative value size", { $0.valueSize = -1 }, "--value-size"),
        ("value over 1 MiB", { $0.valueSize = (1 << 20) + 1 }, "--value-size"),
        (
            "read ratio above 1",
            { o in
                o.workload = "mixed"
                o.readRatio = 1.5
            }, "--read-ratio"
        ),
        (
            "read ratio NaN",
            { o in
                o.workload = "mixed"
                o.readRatio = .nan
            }, "--read-ratio"
        ),
        ("read ratio with another workload", { $0.readRatio = 0.5 }, "--read-ratio"),
        ("zero rate", { $0.rate = 0 }, "--rate"),
        ("infinite rate", { $0.rate = .infinity }, "--rate"),
        ("negative warm-up", { $0.warmup = -1 }, "--warmup"),
        ("zero duration", { $0.duration = 0 }, "--duration"),
        (
            "cluster and spawn",
            { o in
                o.cluster = "127.0.0.1:1"
                o.spawnCluster = 3
            }, "not both"
        ),
        ("bad cluster address", { $0.cluster = "localhost" }, "--cluster"),
        ("port out of range", { $0.cluster = "127.0.0.1:70000" }, "--cluster"),
        ("spawn zero nodes", { $0.spawnCluster = 0 }, "--spawn-cluster"),
        ("spawn too many nodes", { $0.spawnCluster = 8 }, "--spawn-cluster"),
        (
            "preload of the number",
            { o in
                o.stateMachine = "number"
                o.preload = true
            }, "--preload"
        ),
        (
            "http addresses with --spawn-cluster",
            { o in
                o.protocolName = "http"
                o.http = "127.0.0.1:80"
                o.spawnCluster = 3
            }, "--spawn-cluster"
        ),
        ("http addresses without http", { $0.http = "127.0.0.1:8080" }, "--protocol"),
        (
            "http with --cluster",
            { o in
                o.protocolName = "http"
                o.http = "127.0.0.1:80"
                o.cluster = "127.0.0.1:1"
            },
            "--http"
        ),
        (
            "http with ycsb-f",
            { o in
                o.protocolName = "http"
                o.http = "127.0.0.1:80"
                o.workload = "ycsb-f"
            }, "ycsb-f"
        ),
        (
            "map binary with --cluster",
            { o in
                o.cluster = "127.0.0.1:1"
                o.mapBinary = "/bin/true"
            }, "--map-binary"
        ),
    ]

    @Test("bad values and combinations are rejected with a message naming the flag", arguments: 0..<rejected.count)
    func rejects(index: Int) {
        let (name, change, word) = Self.rejected[index]
        var options = CommandLineOptions()
        change(&options)
        #expect(throws: ConfigurationError.self, "\(name)") { try options.configuration() }
        do {
            _ = try options.configuration()
        } catch {
            #expect(error.message.contains(word), "\(name): \(error.message)")
        }
    }

    @Test("--target: seed addresses per connection")
    func seedAddresses() throws {
        let nodes = ["a:1", "b:2", "c:3"]
        var configuration = LoadConfiguration()
        configuration.connections = 4
        configuration.clients = 4
        // Leader-bound reads: the leader first, then the others, on every connection.
        #expect(
            NativeDriver.seedAddresses(nodes: nodes, leader: "b:2", configuration: configuration)
                == Array(repeating: ["b:2", "a:1", "c:3"], count: 4))
        // Sequential or stale reads at the leader: only the leader.
        configuration.consistency = .stale
        #expect(
            NativeDriver.seedAddresses(nodes: nodes, leader: "b:2", configuration: configuration)
                == Array(repeating: ["b:2"], count: 4))
        // Spread over every node: each connection starts at another node.
        configuration.target = .all
        #expect(
            NativeDriver.seedAddresses(nodes: nodes, leader: "b:2", configuration: configuration) == [
                ["a:1", "b:2", "c:3"], ["b:2", "c:3", "a:1"], ["c:3", "a:1", "b:2"], ["a:1", "b:2", "c:3"],
            ])
    }
}
