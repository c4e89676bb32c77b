import ArgumentParser
import BifrostMap
import BifrostRaft
import Foundation
import Logging

/// The options every client command shares.
struct ClusterOptions: ParsableArguments {
    static let defaultCluster = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

    @Option(
        help: """
            Addresses of some cluster nodes, host:port,... (env BIFROST_CLUSTER). Default: \(defaultCluster).
            """)
    var cluster: String?

    @Option(help: "Give up after this many seconds, across retries and failovers. Default: 15.")
    var timeout: Double = 15

    @Option(help: "Client log level (env BIFROST_LOG_LEVEL). Default: error.")
    var logLevel: String?

    func validate() throws {
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be in (0, 86400]") }
    }

    /// Runs `body` with a client of the map, closes the client, and turns a ``RaftClientError`` into
    /// `error: <code>: <message>` and exit code 2.
    func withMap<Result>(
        _ body: (MapClient) async throws(RaftClientError) -> Result
    ) async throws -> Result {
        _ = try Support.bootstrapLogging(
            level: Support.option(logLevel, env: "BIFROST_LOG_LEVEL", fallback: "error") ?? "error")
        let text = Support.option(cluster, env: "BIFROST_CLUSTER", fallback: Self.defaultCluster) ?? Self.defaultCluster
        let seeds = try Support.addresses(text)
        var configuration = RaftClientConfiguration()
        configuration.deadline = .milliseconds(Int64(timeout * 1000))
        let raft = RaftClient(seeds: seeds, configuration: configuration)
        let map = MapClient(raft: raft, stateMachine: ReplicatedMap.defaultID)
        do {
            let result = try await body(map)
            await raft.close()
            return result
        } catch {
            await raft.close()
            throw Support.fail(error)
        }
    }

    /// Runs `body` with the raw Raft client (for `status`).
    func withRaft<Result>(
        _ body: (RaftClient) async throws(RaftClientError) -> Result
    ) async throws -> Result {
        _ = try Support.bootstrapLogging(
            level: Support.option(logLevel, env: "BIFROST_LOG_LEVEL", fallback: "error") ?? "error")
        let text = Support.option(cluster, env: "BIFROST_CLUSTER", fallback: Self.defaultCluster) ?? Self.defaultCluster
        var configuration = RaftClientConfiguration()
        configuration.deadline = .milliseconds(Int64(timeout * 1000))
        configuration.useSession = false
        let raft = RaftClient(seeds: try Support.addresses(text), configuration: configuration)
        do {
            let result = try await body(raft)
            await raft.close()
            return result
        } catch {
            await raft.close()
            throw Support.fail(error)
        }
    }
}

extension ReadConsistency: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "linearizable": self = .linearizable
        case "lease": self = .lease
        case "sequential": self = .sequential
        case "stale": self = .stale
        default: return nil
        }
    }

    public static var allValueStrings: [String] { ["linearizable", "lease", "sequential", "stale"] }
}

/// `bifrost-map get KEY`.
struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the value of a key (a missing key prints nothing and exits 1).")

    @OptionGroup var options: ClusterOptions
    @Argument(help: "The key.") var key: String
    @Option(help: "linearizable (default), lease, sequential or stale.")
    var consistency: ReadConsistency = .linearizable

    func run() async throws {
        let value = try await options.withMap { map throws(RaftClientError) in
            try await map.get(key: key, consistency: consistency)
        }
        guard let value else { throw ExitCode(1) }
        Support.out(Support.text(value))
    }
}

/// `bifrost-map set KEY VALUE`.
struct SetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a key to a value; prints OK.")

    @OptionGroup var options: ClusterOptions
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value (UTF-8 text).") var value: String

    func run() async throws {
        _ = try await options.withMap { map throws(RaftClientError) in
            try await map.set(key: key, value: Array(value.utf8))
        }
        Support.out("OK")
    }
}

/// `bifrost-map del KEY`.
struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del",
        abstract: "Remove a key; prints the value it had (a missing key prints nothing and exits 1).")

    @OptionGroup var options: ClusterOptions
    @Argument(help: "The key.") var key: String

    func run() async throws {
        let old = try await options.withMap { map throws(RaftClientError) in try await map.remove(key: key) }
        guard let old else { throw ExitCode(1) }
        Support.out(Support.text(old))
    }
}

/// `bifrost-map cas KEY --expected V|--absent --new V|--remove`.
struct CompareAndSwap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cas",
        abstract: "Compare and swap: set (or remove) a key only if it holds the expected value (or is absent).",
        discussion: """
            Prints `swapped`, or `not swapped, current: <value>` (`(absent)` for a missing key) and exits 1.
            """)

    @OptionGroup var options: ClusterOptions
    @Argument(help: "The key.") var key: String
    @Option(help: "The value the key must hold.") var expected: String?
    @Flag(help: "The key must be absent.") var absent = false
    @Option(help: "The value to set.") var new: String?
    @Flag(help: "Remove the key instead of setting it.") var remove = false

    func validate() throws {
        guard (expected != nil) != absent else { throw ValidationError("give exactly one of --expected and --absent") }
        guard (new != nil) != remove else { throw ValidationError("give exactly one of --new and --remove") }
    }

    func run() async throws {
        let expectedBytes = expected.map { Array($0.utf8) }
        let newBytes = new.map { Array($0.utf8) }
        let swap = try await options.withMap { map throws(RaftClientError) in
            try await map.compareAndSwap(key: key, expected: expectedBytes, new: newBytes)
        }
        if swap.swapped {
            Support.out("swapped")
        } else {
            Support.out("not swapped, current: \(swap.current.map(Support.text) ?? "(absent)")")
            throw ExitCode(1)
        }
    }
}

/// `bifrost-map list [--prefix P] [--limit N]`.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Print key=value lines in key order (every page, or the first --limit keys).")

    @OptionGroup var options: ClusterOptions
    @Option(help: "Only keys starting with this prefix.") var prefix: String = ""
    @Option(help: "At most this many keys.") var limit: Int?
    @Option(help: "linearizable (default), lease, sequential or stale.")
    var consistency: ReadConsistency = .linearizable

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let pageSize = 1000
        try await options.withMap { map throws(RaftClientError) in
            var remaining = limit ?? Int.max
            var after: String?
            while remaining > 0 {
                let page = try await map.list(
                    prefix: prefix, after: after, limit: min(remaining, pageSize), consistency: consistency)
                for entry in page.entries.prefix(remaining) {
                    Support.out("\(entry.key)=\(Support.text(entry.value))")
                }
                remaining -= page.entries.count
                guard let next = page.next, !page.entries.isEmpty else { break }
                after = next
            }
        }
    }
}

/// `bifrost-map watch --inserts | --key K`.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as they happen, until Ctrl-C.",
        discussion: """
            --inserts prints `<index> <key>=<value>` for every new key. --key K prints `<index> K=<value>` when K \
            is set and `<index> K (removed)` when it is removed. A line on stderr says when the subscription is \
            in place.
            """)

    @OptionGroup var options: ClusterOptions
    @Flag(help: "Every insert of a new key.") var inserts = false
    @Option(help: "Every change of this key.") var key: String?

    func validate() throws {
        guard inserts != (key != nil) else { throw ValidationError("give exactly one of --inserts and --key") }
    }

    func run() async throws {
        try await options.withMap { map throws(RaftClientError) in
            if let key {
                let changes = try await map.onChanged(key)
                Support.err("watching changes of '\(key)'")
                for try await (index, change) in changes {
                    if let new = change.new {
                        Support.out("\(index) \(change.key)=\(Support.text(new))")
                    } else {
                        Support.out("\(index) \(change.key) (removed)")
                    }
                }
            } else {
                let events = try await map.onInserted()
                Support.err("watching inserts")
                for try await (index, entry) in events {
                    Support.out("\(index) \(entry.key)=\(Support.text(entry.value))")
                }
            }
        }
    }
}

/// `bifrost-map status`.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the members, the leader and every node's term, commit and applied index.",
        discussion: "Exits 1 when no leader is known.")

    @OptionGroup var options: ClusterOptions

    func run() async throws {
        let hasLeader = try await options.withRaft { raft throws(RaftClientError) in
            let cluster = try await raft.clusterInfo()
            let leader = cluster.role == "leader" ? cluster.node : cluster.leader
            Support.out("leader: \(leader.map { "\($0)" } ?? "none")  term: \(cluster.term)")
            Support.out("voters: \(cluster.voters.map { "\($0)" }.joined(separator: ", "))")
            if !cluster.learners.isEmpty {
                Support.out("learners: \(cluster.learners.map { "\($0)" }.joined(separator: ", "))")
            }
            Support.out("node  address                role          term  commit  applied  last  snapshot")
            for member in cluster.voters + cluster.learners {
                let id = "\(member.id)".padding(toLength: 5, withPad: " ", startingAt: 0)
                let address = member.address.padding(toLength: 22, withPad: " ", startingAt: 0)
                do throws(RaftClientError) {
                    let info = try await raft.info(at: member.address)
                    let role = info.role.padding(toLength: 12, withPad: " ", startingAt: 0)
                    Support.out(
                        "\(id) \(address) \(role)  \(info.term)  \(info.commitIndex)  \(info.appliedIndex)  "
                            + "\(info.lastIndex)  \(info.snapshotIndex)")
                } catch {
                    Support.out("\(id) \(address) unreachable   (\(error.code): \(error.message))")
                }
            }
            return leader != nil
        }
        if !hasLeader { throw ExitCode(1) }
    }
}
