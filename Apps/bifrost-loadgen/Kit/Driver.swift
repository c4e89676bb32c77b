import BifrostMap
import BifrostRPC
import BifrostRaft
import BifrostWire
import Logging

/// A failed operation: its kind (the report's error key) and a message.
public struct LoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind, used as the key of `errors_by_kind`: a `RaftClientError` code (`timeout`, `unavailable`, ...),
    /// `http-<status>`, `connection`, `protocol` or `setup`.
    public var kind: String
    /// What happened.
    public var message: String

    /// Creates an error.
    public init(kind: String, message: String) {
        self.kind = kind
        self.message = message
    }

    /// The error of a failed `RaftClient` operation: its code names the kind.
    public init(_ error: RaftClientError) {
        self.init(kind: error.code.description, message: error.message)
    }

    /// `kind: message`.
    public var description: String { "\(kind): \(message)" }
}

/// How an operation that did not fail ended.
public enum OperationOutcome: Sendable, Equatable {
    /// It did what it was asked to.
    case done
    /// A read-modify-write whose compare-and-swap found a value other than the one it read (another client wrote
    /// in between). It completed; it is counted apart, not as an error.
    case casConflict
}

/// A key and a value to preload.
public struct LoadEntry: Sendable, Equatable {
    /// The key.
    public var key: String
    /// The value.
    public var value: [UInt8]

    /// Creates an entry.
    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// Carries operations to the system under test. One driver serves every lane of a run; `connection` says which
/// of its connections (`0..<connections`) a lane uses, so lanes are spread over them round-robin.
///
/// Implementations: ``NativeDriver`` (Bifrost's RPC through `RaftClient`) and ``HTTPDriver`` (bifrost-map's
/// HTTP API). An etcd-gateway driver would be another conformance: `perform` maps reads to `GET
/// /v3/kv/range` and writes to `/v3/kv/put` (base64 keys and values in JSON), and `preload` to a `txn` of puts.
public protocol LoadDriver: Sendable {
    /// The system under test, the JSON report's `target` (`bifrost-native`, `bifrost-http`).
    var system: String { get }

    /// Performs one operation over connection `connection`.
    func perform(_ operation: Operation, connection: Int) async throws(LoadError) -> OperationOutcome

    /// Whether closed-loop lanes should use ``perform(_:connection:completion:)``: the driver has a path that
    /// needs no task per operation.
    var prefersCompletionHandlers: Bool { get }

    /// Performs one operation over connection `connection` and hands the outcome to `completion`, exactly once,
    /// on whatever thread the reply arrives.
    func perform(
        _ operation: Operation, connection: Int,
        completion: @escaping @Sendable (Result<OperationOutcome, LoadError>) -> Void)

    /// Writes `entries` (part of the preload) over connection `connection`.
    func preload(_ entries: [LoadEntry], connection: Int) async throws(LoadError)

    /// An executor the lanes of connection `connection` should prefer, if the driver has one.
    func executor(connection: Int) async -> (any TaskExecutor)?

    /// Closes every connection.
    func close() async
}

extension LoadDriver {
    /// No preference: lanes run on the global executor.
    public func executor(connection: Int) async -> (any TaskExecutor)? { nil }

    /// No: lanes are tasks that await ``perform(_:connection:)``.
    public var prefersCompletionHandlers: Bool { false }

    /// ``perform(_:connection:)`` in a task.
    public func perform(
        _ operation: Operation, connection: Int,
        completion: @escaping @Sendable (Result<OperationOutcome, LoadError>) -> Void
    ) {
        performInTask(operation, connection: connection, completion: completion)
    }

    /// ``perform(_:connection:)`` in a task, its outcome handed to `completion`.
    public func performInTask(
        _ operation: Operation, connection: Int,
        completion: @escaping @Sendable (Result<OperationOutcome, LoadError>) -> Void
    ) {
        Task {
            do throws(LoadError) {
                completion(.success(try await perform(operation, connection: connection)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}

/// The native driver: `connections` `RPCClient`s, each under its own `RaftClient` (so its own client session),
/// with a typed `MapClient` or `NumberClient` over it.
public final class NativeDriver: LoadDriver {
    /// `bifrost-native`.
    public let system = "bifrost-native"
    /// The state machine the operations go to.
    public let stateMachine: StateMachineKind
    /// The consistency of reads.
    public let consistency: ReadConsistency
    /// The seed addresses of each connection's `RaftClient`, in order.
    public let seeds: [[String]]
    /// One RPC client per connection (each one TCP connection per node).
    let rpcClients: [RPCClient]
    /// One Raft client per connection, over its RPC client.
    let raftClients: [RaftClient]
    /// The map's typed client per connection.
    let maps: [MapClient]
    /// The number's typed client per connection.
    let numbers: [NumberClient]
    /// Whether lanes run on their connection's event loop (not when reads spread over every node).
    let lanesPreferConnectionLoop: Bool

    /// Creates the clients; no connection is opened until the first operation.
    ///
    /// - Parameter seeds: the seed addresses of each connection (one array per connection), from
    ///   ``seedAddresses(nodes:leader:configuration:)``.
    /// - Parameter readsOnAllNodes: `linearizable` reads go to any node (followers serve them with ReadIndex),
    ///   not only to the leader (`--target all`).
    public init(
        seeds: [[String]], stateMachine: StateMachineKind, consistency: ReadConsistency,
        readsOnAllNodes: Bool = false, logger: Logger
    ) {
        self.lanesPreferConnectionLoop = !readsOnAllNodes
        self.stateMachine = stateMachine
        self.consistency = consistency
        self.seeds = seeds
        var rpcConfiguration = RPCClientConfiguration()
        rpcConfiguration.inProcessShortcut = false
        let rpcClients = seeds.map { _ in RPCClient(configuration: rpcConfiguration, logger: logger) }
        var clientConfiguration = RaftClientConfiguration()
        clientConfiguration.linearizableReadsOnFollowers = readsOnAllNodes
        let raftClients = zip(seeds, rpcClients).map { seeds, rpc in
            RaftClient(seeds: seeds, configuration: clientConfiguration, rpc: rpc, logger: logger)
        }
        self.rpcClients = rpcClients
        self.raftClients = raftClients
        self.maps = raftClients.map { MapClient(raft: $0, stateMachine: ReplicatedMap.defaultID) }
        self.numbers = raftClients.map { NumberClient(raft: $0, stateMachine: ReplicatedNumber.defaultID) }
    }

    /// The seed addresses of each of `configuration.connections` connections.
    ///
    /// - `--target leader` with `sequential` or `stale` reads: the leader only, so the reads (which `RaftClient`
    ///   spreads over the nodes it knows) stay on the leader.
    /// - `--target all`: every node, rotated by the connection's index, so the connections start their
    ///   `sequential`, `stale` and (with ``RaftClientConfiguration/linearizableReadsOnFollowers``) `linearizable`
    ///   reads at different nodes and take the nodes in turn.
    /// - Otherwise: the leader first (when known), then the other nodes.
    public static func seedAddresses(
        nodes: [String], leader: String?, configuration: LoadConfiguration
    ) -> [[String]] {
        let ordered = leader.map { leader in [leader] + nodes.filter { $0 != leader } } ?? nodes
        let anyNodeReads = configuration.consistency == .sequential || configuration.consistency == .stale
        return (0..<configuration.connections).map { index in
            switch configuration.target {
            case .leader:
                if anyNodeReads, let leader { return [leader] }
                return ordered
            case .all:
                guard !nodes.isEmpty else { return nodes }
                let shift = index % nodes.count
                return Array(nodes[shift...] + nodes[..<shift])
            }
        }
    }

    /// The event loop of connection `connection`'s RPC connection to its first seed, when every operation goes
    /// to that node (the leader, with `--target leader`): lanes that prefer it send their requests and are
    /// resumed on the connection's own thread, with no hop through the cooperative thread pool
    /// (`RPCClient.executor(for:)`). The load generator then takes less of the CPU it shares with the nodes.
    public func executor(connection: Int) async -> (any TaskExecutor)? {
        let index = connection % rpcClients.count
        guard lanesPreferConnectionLoop, let first = seeds[index].first, let address = RPCAddress(first) else {
            return nil
        }
        return try? await rpcClients[index].executor(for: address)
    }

    /// Performs `operation` through connection `connection`'s client.
    public func perform(_ operation: Operation, connection: Int) async throws(LoadError) -> OperationOutcome {
        let index = connection % raftClients.count
        do {
            switch stateMachine {
            case .map:
                return try await performOnMap(operation, maps[index])
            case .number:
                return try await performOnNumber(operation, numbers[index])
            }
        } catch {
            throw LoadError(error)
        }
    }

    /// With the map: reads, writes and updates go through `RaftClient`'s completion-handler methods, which take
    /// no task when the client knows where to send (the common case). The load generator then leaves more of the
    /// CPU it shares with the nodes to them.
    public var prefersCompletionHandlers: Bool { stateMachine == .map }

    /// A map read, write or update through `RaftClient.query` and `command` with completion handlers, the same
    /// request bytes and the same result decoding as `MapClient`'s methods; anything else through
    /// ``perform(_:connection:)`` in a task.
    public func perform(
        _ operation: Operation, connection: Int,
        completion: @escaping @Sendable (Result<OperationOutcome, LoadError>) -> Void
    ) {
        let raft = raftClients[connection % raftClients.count]
        switch (stateMachine, operation.kind) {
        case (.map, .read):
            raft.query(
                stateMachine: ReplicatedMap.defaultID, function: MapRequests.get,
                argument: MapRequests.argument(key: operation.key), consistency: consistency
            ) { completion(MapRequests.outcome($0)) }
        case (.map, .write), (.map, .update):
            raft.command(
                stateMachine: ReplicatedMap.defaultID, function: MapRequests.put,
                argument: MapRequests.argument(key: operation.key, value: operation.value)
            ) { completion(MapRequests.putOutcome($0)) }
        default:
            performInTask(operation, connection: connection, completion: completion)
        }
    }

    private func performOnMap(
        _ operation: Operation, _ map: MapClient
    ) async throws(RaftClientError) -> OperationOutcome {
        switch operation.kind {
        case .read:
            _ = try await map.get(key: operation.key, consistency: consistency)
        case .write, .update:
            try await map.put(key: operation.key, value: operation.value)
        case .readModifyWrite:
            let current = try await map.get(key: operation.key, consistency: consistency)
            let swap = try await map.compareAndSwap(key: operation.key, expected: current, new: operation.value)
            return swap.swapped ? .done : .casConflict
        }
        return .done
    }

    private func performOnNumber(
        _ operation: Operation, _ number: NumberClient
    ) async throws(RaftClientError) -> OperationOutcome {
        switch operation.kind {
        case .read:
            _ = try await number.get(consistency: consistency)
        case .write:
            _ = try await number.set(Int64(truncatingIfNeeded: operation.keyIndex))
        case .update:
            _ = try await number.addAndGet(1)
        case .readModifyWrite:
            let current = try await number.get(consistency: consistency)
            let swapped = try await number.compareAndSwap(expected: current, new: current &+ 1)
            return swapped ? .done : .casConflict
        }
        return .done
    }

    /// Writes `entries` with one `putAll` command (one log entry).
    public func preload(_ entries: [LoadEntry], connection: Int) async throws(LoadError) {
        guard stateMachine == .map else {
            throw LoadError(kind: "setup", message: "the number state machine has no keys to preload")
        }
        do {
            _ = try await maps[connection % maps.count].putAll(entries.map { MapEntry(key: $0.key, value: $0.value) })
        } catch {
            throw LoadError(error)
        }
    }

    /// Closes every client session and connection.
    public func close() async {
        for client in raftClients { await client.close() }
        for rpc in rpcClients { await rpc.shutdown() }
    }
}

/// The map's `get(key:)` and `put(key:value:)` requests as `MapClient` encodes them, for the completion-handler
/// path of ``NativeDriver``: the function ids, the argument (a keyed frame with one field per parameter, the bytes
/// `WireEncoder` gives a struct of those fields; `MapRequestsTests` compares them) and the result, a `[UInt8]?`.
enum MapRequests {
    /// The function id of `ReplicatedMap.get(key:)`.
    static let get = ReplicatedMap.functionIDs["ReplicatedMap.get(key:)"] ?? 0
    /// The function id of `ReplicatedMap.put(key:value:context:)`, which the writes use: like etcd's put without
    /// `prev_kv`, it returns no previous value.
    static let put = ReplicatedMap.functionIDs["ReplicatedMap.put(key:value:context:)"] ?? 0

    /// The argument of `get(key:)`.
    static func argument(key: String) -> [UInt8] {
        keyedFrame(key: key, value: nil)
    }

    /// The argument of `put(key:value:)` (and of `set(key:value:)`: the same fields).
    static func argument(key: String, value: [UInt8]) -> [UInt8] {
        keyedFrame(key: key, value: value)
    }

    /// The keyed frame of a `key` field and an optional `value` field, written straight into one array: a varint
    /// length, then each field's name (a string) and its value (a byte string holding the field's own encoding,
    /// itself a byte string). One allocation per request, where a `WireWriter` took a buffer and a copy.
    private static func keyedFrame(key: String, value: [UInt8]?) -> [UInt8] {
        var key = key
        return key.withUTF8 { keyBytes in
            let keyField = WireWriter.varintSize(UInt64(keyBytes.count)) + keyBytes.count
            var body = 4 + WireWriter.varintSize(UInt64(keyField)) + keyField
            var valueField = 0
            if let value {
                valueField = WireWriter.varintSize(UInt64(value.count)) + value.count
                body += 6 + WireWriter.varintSize(UInt64(valueField)) + valueField
            }
            var out: [UInt8] = []
            out.reserveCapacity(WireWriter.varintSize(UInt64(body)) + body)
            Wire.appendVarint(UInt64(body), to: &out)
            out.append(3)
            out.append(contentsOf: "key".utf8)
            Wire.appendVarint(UInt64(keyField), to: &out)
            Wire.appendVarint(UInt64(keyBytes.count), to: &out)
            out.append(contentsOf: keyBytes)
            if let value {
                out.append(5)
                out.append(contentsOf: "value".utf8)
                Wire.appendVarint(UInt64(valueField), to: &out)
                Wire.appendVarint(UInt64(value.count), to: &out)
                out.append(contentsOf: value)
            }
            return out
        }
    }

    /// The outcome of a `put` reply, whose value is empty (the function returns nothing).
    static func putOutcome(
        _ result: Result<(value: [UInt8], index: UInt64), RaftClientError>
    ) -> Result<OperationOutcome, LoadError> {
        outcome(result, valid: { $0.isEmpty }, describing: "a put result")
    }

    /// The outcome of a reply whose value is a `[UInt8]?` (`get` returns one).
    static func outcome(
        _ result: Result<(value: [UInt8], index: UInt64), RaftClientError>
    ) -> Result<OperationOutcome, LoadError> {
        outcome(result, valid: isOptionalByteString, describing: "an undecodable result")
    }

    /// Done when the reply's value passes `valid`, a protocol error when it does not, else the client's error.
    private static func outcome(
        _ result: Result<(value: [UInt8], index: UInt64), RaftClientError>, valid: ([UInt8]) -> Bool,
        describing what: String
    ) -> Result<OperationOutcome, LoadError> {
        switch result {
        case .success(let reply):
            guard valid(reply.value) else {
                return .failure(LoadError(kind: "protocol", message: "\(what) of \(reply.value.count) bytes"))
            }
            return .success(.done)
        case .failure(let error):
            return .failure(LoadError(error))
        }
    }

    /// Whether `bytes` is exactly one encoded `[UInt8]?` (what `Wire.decode([UInt8]?.self, fromBytes:)` accepts):
    /// the tag 0, or the tag 1, a varint length and that many bytes. Checked in place: the value is not needed.
    static func isOptionalByteString(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            guard let tag = raw.first else { return false }
            if tag == 0 { return raw.count == 1 }
            var offset = 1
            guard tag == 1, let length = try? WireReader.readVarint(from: raw, at: &offset) else { return false }
            return UInt64(raw.count - offset) == length
        }
    }
}

/// Finds the cluster's leader and members through a throw-away client.
public enum ClusterProbe {
    /// The nodes and the leader, as the leader (or any node) reports them. Retries within `deadline`.
    public static func discover(
        seeds: [String], deadline: Duration, logger: Logger
    ) async throws(LoadError) -> (nodes: [String], leader: String?) {
        var configuration = RaftClientConfiguration()
        configuration.useSession = false
        configuration.deadline = deadline
        // The client creates its own RPC client, which `close()` shuts down.
        let client = RaftClient(seeds: seeds, configuration: configuration, logger: logger)
        let info: RaftClusterInfo
        do {
            info = try await client.clusterInfo()
        } catch {
            await client.close()
            throw LoadError(error)
        }
        await client.close()
        let nodes = (info.voters + info.learners).map(\.address).filter { !$0.isEmpty }
        let leader = info.role == "leader" ? info.node.address : info.leader?.address
        return (nodes.isEmpty ? seeds : nodes, leader.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Waits until the cluster has a leader (polling `clusterInfo` with short attempts), or throws after
    /// `timeout`. `stillRunning` is asked between attempts: when it returns a message, the wait ends with it
    /// (a spawned node that exited).
    public static func waitForLeader(
        seeds: [String], timeout: Duration, logger: Logger, stillRunning: () -> String?
    ) async throws(LoadError) -> (nodes: [String], leader: String) {
        let deadline = ContinuousClock.now + timeout
        var lastError: LoadError?
        while ContinuousClock.now < deadline {
            if let problem = stillRunning() { throw LoadError(kind: "setup", message: problem) }
            do {
                let found = try await discover(seeds: seeds, deadline: .seconds(1), logger: logger)
                if let leader = found.leader { return (found.nodes, leader) }
            } catch {
                lastError = error
            }
            do {
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                throw LoadError(kind: "setup", message: "cancelled while waiting for a leader")
            }
        }
        throw LoadError(
            kind: "setup",
            message: "no leader within \(timeout)" + (lastError.map { " (last error: \($0))" } ?? ""))
    }
}
