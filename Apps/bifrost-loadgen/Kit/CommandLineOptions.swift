import BifrostRaft

/// The flags as given on the command line, before parsing and validation. ``configuration()`` turns them into a
/// validated ``LoadConfiguration``; the executable fills one from its `ArgumentParser` options, and tests build
/// them directly.
public struct CommandLineOptions: Sendable, Equatable {
    /// `--workload`.
    public var workload = defaults.workload.rawValue
    /// `--state-machine`.
    public var stateMachine = defaults.stateMachine.rawValue
    /// `--protocol`.
    public var protocolName = defaults.protocolKind.rawValue
    /// `--cluster host:port,...`.
    public var cluster: String?
    /// `--spawn-cluster N`.
    public var spawnCluster: Int?
    /// `--http host:port,...`.
    public var http: String?
    /// `--map-binary PATH`.
    public var mapBinary: String?
    /// `--distribution`.
    public var distribution: String?
    /// `--key-size`.
    public var keySize = defaults.keySize
    /// `--value-size`.
    public var valueSize = defaults.valueSize
    /// `--keyspace`.
    public var keyspace = Int(defaults.keyspace)
    /// `--read-ratio`.
    public var readRatio: Double?
    /// `--preload`.
    public var preload = defaults.preload
    /// `--clients`.
    public var clients = defaults.clients
    /// `--connections`.
    public var connections = defaults.connections
    /// `--pipeline`.
    public var pipeline = defaults.pipeline
    /// `--consistency`.
    public var consistency = "linearizable"
    /// `--target`.
    public var target = defaults.target.rawValue
    /// `--rate`.
    public var rate: Double?
    /// `--warmup`.
    public var warmup = defaults.warmup
    /// `--duration`.
    public var duration = defaults.duration
    /// `--seed`.
    public var seed = defaults.seed
    /// `--json`.
    public var json = defaults.json

    /// The defaults: those of ``LoadConfiguration``.
    public init() {}

    private static let defaults = LoadConfiguration()

    /// Parses and validates every flag.
    public func configuration() throws(ConfigurationError) -> LoadConfiguration {
        var configuration = LoadConfiguration()
        configuration.workload = try Self.parse(workload, "--workload", WorkloadKind.self)
        configuration.stateMachine = try Self.parse(stateMachine, "--state-machine", StateMachineKind.self)
        configuration.protocolKind = try Self.parse(protocolName, "--protocol", ProtocolKind.self)
        if let distribution {
            configuration.distribution = try Self.parse(distribution, "--distribution", KeyDistribution.self)
        }
        guard let level = ReadConsistency(name: consistency) else {
            throw ConfigurationError(
                "--consistency must be one of linearizable, lease, sequential, stale, not '\(consistency)'")
        }
        configuration.consistency = level
        configuration.target = try Self.parse(target, "--target", ReadTarget.self)
        configuration.httpAddresses = http.map(LoadConfiguration.splitAddresses) ?? []
        switch (configuration.protocolKind, cluster, spawnCluster) {
        case (_, .some, .some):
            throw ConfigurationError("give --cluster (a running cluster) or --spawn-cluster (start one), not both")
        case (.http, .some, _):
            throw ConfigurationError("--protocol http takes a running cluster's addresses from --http, not --cluster")
        case (.http, nil, let nodes):
            // A running cluster's HTTP addresses, or (without --http) a spawned cluster serving HTTP.
            configuration.cluster =
                configuration.httpAddresses.isEmpty || nodes != nil
                ? .spawn(nodes: nodes ?? 3) : .external(configuration.httpAddresses)
        case (.native, .some(let text), nil):
            configuration.cluster = .external(LoadConfiguration.splitAddresses(text))
        case (.native, nil, let nodes):
            configuration.cluster = .spawn(nodes: nodes ?? 3)
        }
        if mapBinary != nil {
            guard case .spawn = configuration.cluster else {
                throw ConfigurationError("--map-binary is used only with a spawned cluster")
            }
        }
        configuration.mapBinary = mapBinary
        guard keyspace >= 1 else { throw ConfigurationError("--keyspace must be at least 1, not \(keyspace)") }
        configuration.keyspace = UInt64(keyspace)
        configuration.keySize = keySize
        configuration.valueSize = valueSize
        configuration.readRatio = readRatio
        configuration.preload = preload
        configuration.clients = clients
        // Clients are spread over the connections: more connections than clients would stay unused, so the
        // run uses (and reports) at most one per client.
        configuration.connections = connections >= 1 ? min(connections, max(clients, 1)) : connections
        configuration.pipeline = pipeline
        configuration.rate = rate
        configuration.warmup = warmup
        configuration.duration = duration
        configuration.seed = seed
        configuration.json = json
        try configuration.validate()
        return configuration
    }

    /// The case of `Value` named `text`, or an error naming `flag` and listing the cases.
    static func parse<Value: RawRepresentable & CaseIterable>(
        _ text: String, _ flag: String, _ type: Value.Type
    ) throws(ConfigurationError) -> Value where Value.RawValue == String {
        guard let value = Value(rawValue: text) else {
            throw ConfigurationError(
                "\(flag) must be one of \(Value.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
        }
        return value
    }
}
