import ArgumentParser
import BifrostLoadgenKit
// Linked for its malloc, as bifrost-map is: the load generator allocates per operation, and its CPU is part of
// every figure it reports (docs/benchmarks.md, "jemalloc").
import CJemalloc
import Dispatch
import Foundation
import Logging

/// `bifrost-loadgen`: the load generator of Bifrost.
///
/// Exit codes: 0 a report was printed (it may count errors); 1 the run could not be made (no `bifrost-map`
/// binary, no leader, a failed preload); 64 a usage error; 130 interrupted (SIGINT or SIGTERM; a spawned
/// cluster is stopped and its directory removed first).
@main
struct BifrostLoadgenCommand: AsyncParsableCommand {
    /// The command's name, abstract and discussion for `--help`.
    static let configuration = CommandConfiguration(
        commandName: "bifrost-loadgen",
        abstract: "Put load on a Bifrost replicated map (or number) and report throughput and latency.",
        discussion: """
            With no --cluster, it starts a 3-node cluster of its own (--spawn-cluster N): N `bifrost-map serve` \
            processes on 127.0.0.1 with free ports and their data in a fresh temporary directory, found next to \
            this executable (or --map-binary, or BIFROST_MAP_BINARY). It waits for a leader, runs the load, then \
            stops the nodes and removes the directory, also on Ctrl-C and on errors.

            A progress line per second goes to stderr; the report goes to stdout (one JSON object with --json).
            """
    )

    @Option(help: "write, read, mixed, ycsb-a, ycsb-b, ycsb-c or ycsb-f.")
    var workload = "write"

    @Option(help: "map (MapClient: set/get/compareAndSwap) or number (NumberClient: set/get/add).")
    var stateMachine = "map"

    @Option(name: .customLong("protocol"), help: "native (Bifrost RPC) or http (bifrost-map's HTTP API, --http).")
    var protocolName = "native"

    @Option(help: "A running cluster, host:port,... (RPC addresses). Default: spawn one.")
    var cluster: String?

    @Option(help: "Start this many bifrost-map nodes for the run (default 3 when --cluster is not given).")
    var spawnCluster: Int?

    @Option(help: "HTTP addresses for --protocol http, host:port,...")
    var http: String?

    @Option(help: "The bifrost-map binary to spawn (else BIFROST_MAP_BINARY, else next to this executable).")
    var mapBinary: String?

    @Option(help: "uniform, zipfian (YCSB scrambled, theta 0.99) or sequential. Default: zipfian for ycsb-*.")
    var distribution: String?

    @Option(help: "Key length in bytes.")
    var keySize = 16

    @Option(help: "Value length in bytes.")
    var valueSize = 100

    @Option(help: "Number of distinct keys.")
    var keyspace = 100_000

    @Option(help: "Fraction of reads of --workload mixed, in [0, 1]. Default: 0.5.")
    var readRatio: Double?

    @Flag(help: "Write every key once (putAll batches) before the warm-up.")
    var preload = false

    @Option(help: "Concurrent clients.")
    var clients = 64

    @Option(
        help: "Connections (RaftClients, each with its own RPCClient) the clients are spread over (at most --clients).")
    var connections = 8

    @Option(help: "Outstanding requests per client.")
    var pipeline = 1

    @Option(help: "Read consistency: linearizable, lease, sequential or stale.")
    var consistency = "linearizable"

    @Option(help: "Where reads go: leader, or all (sequential and stale reads spread over every node).")
    var target = "leader"

    @Option(help: "Open loop at this many operations per second in total (default: closed loop).")
    var rate: Double?

    @Option(help: "Seconds of load before measuring.")
    var warmup: Double = 2

    @Option(help: "Seconds measured.")
    var duration: Double = 10

    @Option(help: "Seed of the workload and key generators.")
    var seed: UInt64 = 1

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    @Option(help: "Log level of the clients on stderr: trace ... critical.")
    var logLevel = "error"

    /// The options as the kit's ``CommandLineOptions``.
    var options: CommandLineOptions {
        var options = CommandLineOptions()
        options.workload = workload
        options.stateMachine = stateMachine
        options.protocolName = protocolName
        options.cluster = cluster
        options.spawnCluster = spawnCluster
        options.http = http
        options.mapBinary = mapBinary
        options.distribution = distribution
        options.keySize = keySize
        options.valueSize = valueSize
        options.keyspace = keyspace
        options.readRatio = readRatio
        options.preload = preload
        options.clients = clients
        options.connections = connections
        options.pipeline = pipeline
        options.consistency = consistency
        options.target = target
        options.rate = rate
        options.warmup = warmup
        options.duration = duration
        options.seed = seed
        options.json = json
        return options
    }

    /// Rejects bad flags before anything starts (exit code 64).
    func validate() throws {
        do {
            _ = try options.configuration()
        } catch {
            throw ValidationError(error.message)
        }
        guard Logger.Level(rawValue: logLevel.lowercased()) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Runs the load and prints the report; SIGINT and SIGTERM stop it cleanly.
    func run() async throws {
        let configuration: LoadConfiguration
        do {
            configuration = try options.configuration()
        } catch {
            throw ValidationError(error.message)
        }
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .error
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "bifrost-loadgen")

        // SIGINT and SIGTERM cancel the run, which stops a spawned cluster before returning.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let work = Task { () async throws -> LoadReport in
            try await Loadgen.run(configuration, logger: logger, progress: { Output.err($0) })
        }
        let sources = [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                Output.err("bifrost-loadgen: interrupted; stopping")
                work.cancel()
            }
            source.resume()
            return source
        }
        let result = await work.result
        for source in sources { source.cancel() }

        switch result {
        case .success(let report):
            if configuration.json {
                Output.out(report.json())
            } else {
                Output.out(report.text())
            }
        case .failure(let error):
            if work.isCancelled || (error as? LoadError)?.kind == "cancelled" {
                Output.err("bifrost-loadgen: interrupted")
                throw ExitCode(130)
            }
            Output.err("error: \(error)")
            throw ExitCode(1)
        }
    }
}

/// Unbuffered output.
enum Output {
    /// Writes `text` to stdout as it is (the reports end with a newline).
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes a line to stderr.
    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
