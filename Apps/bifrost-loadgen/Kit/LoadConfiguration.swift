import BifrostRaft

/// The replicated state machine the load runs against (`--state-machine`).
public enum StateMachineKind: String, Sendable, CaseIterable {
    /// `ReplicatedMap` (id 1) through `MapClient`: `set`, `get`, `compareAndSwap`, `putAll` for the preload.
    case map
    /// `ReplicatedNumber` (id 3) through `NumberClient`: `set`, `get`, `addAndGet`, `compareAndSwap`. There is
    /// one number, so every operation touches the same state and the keys are ignored.
    case number
}

/// How the load generator talks to the cluster (`--protocol`).
public enum ProtocolKind: String, Sendable, CaseIterable {
    /// Bifrost's RPC through `RaftClient`.
    case native
    /// bifrost-map's HTTP API (`PUT /v1/kv/{key}`, `GET /v1/kv/{key}?consistency=...`) over keep-alive HTTP/1.1.
    case http
}

/// Where reads go (`--target`).
public enum ReadTarget: String, Sendable, CaseIterable {
    /// Every request goes to the leader. For `sequential` and `stale` reads the clients are seeded with the
    /// leader's address only, so they read there too.
    case leader
    /// `sequential` and `stale` reads are spread over every node: each connection's client is seeded with the
    /// nodes in a different rotation, and the client takes the known nodes in turn. `linearizable` and `lease`
    /// reads still go to the leader: `RaftClient` routes them there (a follower would only forward the read
    /// index request to the leader).
    case all
}

/// The cluster under load.
public enum ClusterSource: Sendable, Equatable {
    /// `--spawn-cluster N` (the default, with 3 nodes): start N `bifrost-map serve` processes and stop them after.
    case spawn(nodes: Int)
    /// `--cluster host:port,...`: a running cluster.
    case external([String])
}

/// A configuration error: a flag with a value out of range, or flags that do not go together.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, naming the flag.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

/// Every parameter of a run, validated by ``validate()``.
public struct LoadConfiguration: Sendable, Equatable {
    /// The workload.
    public var workload: WorkloadKind = .write
    /// The state machine.
    public var stateMachine: StateMachineKind = .map
    /// The protocol.
    public var protocolKind: ProtocolKind = .native
    /// The cluster: spawned or external.
    public var cluster: ClusterSource = .spawn(nodes: 3)
    /// HTTP addresses (`--http`), for `--protocol http`.
    public var httpAddresses: [String] = []
    /// The `bifrost-map` binary to spawn (`--map-binary`); `nil` looks next to this executable.
    public var mapBinary: String?
    /// The key distribution; `nil` means the workload's default (``WorkloadKind/defaultDistribution``).
    public var distribution: KeyDistribution?
    /// Key length in bytes.
    public var keySize = 16
    /// Value length in bytes.
    public var valueSize = 100
    /// The number of distinct keys.
    public var keyspace: UInt64 = 100_000
    /// The fraction of reads of `--workload mixed` (`nil`: 0.5).
    public var readRatio: Double?
    /// Whether every key is written once before the run.
    public var preload = false
    /// Concurrent clients.
    public var clients = 64
    /// RPC (or HTTP) connections the clients are spread over.
    public var connections = 8
    /// Outstanding requests per client.
    public var pipeline = 1
    /// The consistency of reads.
    public var consistency: ReadConsistency = .linearizable
    /// Where reads go.
    public var target: ReadTarget = .leader
    /// Total operations per second for an open loop; `nil` for a closed loop.
    public var rate: Double?
    /// Seconds of load before measuring.
    public var warmup: Double = 2
    /// Seconds measured.
    public var duration: Double = 10
    /// The seed of every random choice.
    public var seed: UInt64 = 1
    /// Whether the report is JSON.
    public var json = false

    /// Creates the default configuration.
    public init() {}

    /// The distribution in effect.
    public var effectiveDistribution: KeyDistribution { distribution ?? workload.defaultDistribution }

    /// The fraction of reads of `--workload mixed`.
    public var effectiveReadRatio: Double { readRatio ?? 0.5 }

    /// The operation mix in effect.
    public var mix: OperationMix { OperationMix(workload: workload, readRatio: effectiveReadRatio) }

    /// Client lanes: one per outstanding request (`clients * pipeline`).
    public var lanes: Int { clients * pipeline }

    /// The largest accepted values of the size flags.
    public static let maxKeySize = 4096
    /// The largest accepted value size (1 MiB).
    public static let maxValueSize = 1 << 20
    /// The largest accepted number of clients.
    public static let maxClients = 10_000
    /// The largest accepted pipeline depth.
    public static let maxPipeline = 1024
    /// The largest number of nodes `--spawn-cluster` starts.
    public static let maxSpawnedNodes = 7

    /// Checks every value and every combination; throws the first problem found.
    public func validate() throws(ConfigurationError) {
        guard (1...Self.maxClients).contains(clients) else {
            throw ConfigurationError("--clients must be in 1...\(Self.maxClients), not \(clients)")
        }
        guard connections >= 1, connections <= clients else {
            throw ConfigurationError("--connections must be in 1...--clients (\(clients)), not \(connections)")
        }
        guard (1...Self.maxPipeline).contains(pipeline) else {
            throw ConfigurationError("--pipeline must be in 1...\(Self.maxPipeline), not \(pipeline)")
        }
        guard keyspace >= 1, keyspace <= 1_000_000_000_000 else {
            throw ConfigurationError("--keyspace must be in 1...10^12, not \(keyspace)")
        }
        let minimumKey = KeyFormat.minimumSize(keyspace: keyspace)
        guard keySize >= max(minimumKey, 2), keySize <= Self.maxKeySize else {
            throw ConfigurationError(
                "--key-size must be in \(max(minimumKey, 2))...\(Self.maxKeySize) for a keyspace of \(keyspace) "
                    + "(a key is `k` and the zero-padded index), not \(keySize)")
        }
        guard (0...Self.maxValueSize).contains(valueSize) else {
            throw ConfigurationError("--value-size must be in 0...\(Self.maxValueSize), not \(valueSize)")
        }
        if let readRatio {
            guard workload == .mixed else { throw ConfigurationError("--read-ratio applies to --workload mixed only") }
            guard readRatio.isFinite, (0...1).contains(readRatio) else {
                throw ConfigurationError("--read-ratio must be in [0, 1], not \(readRatio)")
            }
        }
        if let rate {
            guard rate.isFinite, rate > 0, rate <= 10_000_000 else {
                throw ConfigurationError("--rate must be in (0, 10000000] operations per second, not \(rate)")
            }
        }
        guard warmup.isFinite, warmup >= 0, warmup <= 86_400 else {
            throw ConfigurationError("--warmup must be in [0, 86400] seconds, not \(warmup)")
        }
        guard duration.isFinite, duration > 0, duration <= 86_400 else {
            throw ConfigurationError("--duration must be in (0, 86400] seconds, not \(duration)")
        }
        switch protocolKind {
        case .native:
            guard httpAddresses.isEmpty else { throw ConfigurationError("--http needs --protocol http") }
        case .http:
            for address in httpAddresses where !Self.isAddress(address) {
                throw ConfigurationError("--http: '\(address)' is not host:port")
            }
            guard stateMachine == .map else {
                throw ConfigurationError("--protocol http supports --state-machine map only")
            }
            guard workload != .ycsbF else {
                throw ConfigurationError("--protocol http does no read-modify-write: ycsb-f needs --protocol native")
            }
            switch cluster {
            case .spawn:
                guard httpAddresses.isEmpty else {
                    throw ConfigurationError("--http names a running cluster: leave out --spawn-cluster")
                }
            case .external:
                guard !httpAddresses.isEmpty else {
                    throw ConfigurationError("--protocol http needs --http host:port,... (or a spawned cluster)")
                }
            }
        }
        switch cluster {
        case .spawn(let nodes):
            guard (1...Self.maxSpawnedNodes).contains(nodes) else {
                throw ConfigurationError("--spawn-cluster must be in 1...\(Self.maxSpawnedNodes), not \(nodes)")
            }
        case .external(let addresses):
            guard !addresses.isEmpty else { throw ConfigurationError("--cluster needs at least one host:port") }
            for address in addresses where !Self.isAddress(address) {
                throw ConfigurationError("--cluster: '\(address)' is not host:port")
            }
        }
        if stateMachine == .number && preload {
            throw ConfigurationError("--preload applies to --state-machine map (the number has no keys)")
        }
    }

    /// Whether `text` is `host:port` (or `[v6]:port`) with a port in 1...65535.
    public static func isAddress(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            return false
        }
        return colon != text.startIndex && (1...65535).contains(port)
    }

    /// Splits `host:port,...` into trimmed, non-empty items.
    public static func splitAddresses(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0).trimmingCharacters() }.filter { !$0.isEmpty }
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmingCharacters() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
