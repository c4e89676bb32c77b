import Foundation
import Logging

/// A whole run: start or find the cluster, connect, preload, warm up, measure, report, clean up.
public enum Loadgen {
    /// How long a spawned cluster may take to elect a leader.
    public static let spawnTimeout: Duration = .seconds(30)
    /// How long an external cluster may take to name its leader.
    public static let discoveryTimeout: Duration = .seconds(15)

    /// Runs `configuration` (already validated) and returns its report. Progress lines (what was spawned, the
    /// preload, one line per second) go to `progress`.
    ///
    /// A spawned cluster is always stopped and its directory removed before this returns or throws, also when
    /// the calling task is cancelled (Ctrl-C); a cancelled run throws a `cancelled` error.
    public static func run(
        _ configuration: LoadConfiguration, logger: Logger, progress: @escaping @Sendable (String) -> Void
    ) async throws(LoadError) -> LoadReport {
        var spawned: SpawnedCluster?
        let seeds: [String]
        let clusterText: String
        switch configuration.cluster {
        case .spawn(let count):
            let binary = try SpawnedCluster.findMapBinary(explicit: configuration.mapBinary)
            let cluster = try SpawnedCluster.start(count: count, binary: binary)
            spawned = cluster
            progress(
                "spawned \(count) bifrost-map nodes (\(binary)) with their data in \(cluster.directory): "
                    + cluster.nodes.map { "n\($0.id) \($0.address) pid \($0.pid)" }.joined(separator: ", "))
            seeds = cluster.addresses
            clusterText = "spawned:\(count)"
        case .external(let addresses):
            seeds = addresses
            clusterText = addresses.joined(separator: ",")
        }
        do {
            let report = try await load(
                configuration, seeds: seeds, clusterText: clusterText, spawned: spawned, logger: logger,
                progress: progress)
            await stop(spawned, progress: progress)
            return report
        } catch {
            await stop(spawned, progress: progress)
            throw error
        }
    }

    private static func stop(_ cluster: SpawnedCluster?, progress: @Sendable (String) -> Void) async {
        guard let cluster else { return }
        let killed = await cluster.stop()
        progress(
            "stopped the spawned nodes"
                + (killed.isEmpty ? "" : " (SIGKILL for \(killed.map { "n\($0)" }.joined(separator: ", ")))")
                + " and removed \(cluster.directory)")
    }

    private static func load(
        _ configuration: LoadConfiguration, seeds: [String], clusterText: String, spawned: SpawnedCluster?,
        logger: Logger, progress: @escaping @Sendable (String) -> Void
    ) async throws(LoadError) -> LoadReport {
        let driver: any LoadDriver
        if let spawned, configuration.protocolKind == .http {
            let (_, leader) = try await ClusterProbe.waitForLeader(
                seeds: spawned.addresses, timeout: spawnTimeout, logger: logger,
                stillRunning: { spawned.exitedNode() })
            progress("cluster HTTP: \(spawned.httpAddresses.joined(separator: ", ")); leader \(leader)")
        }
        switch configuration.protocolKind {
        case .native:
            let nodes: [String]
            let leader: String?
            if let spawned {
                (nodes, leader) = try await ClusterProbe.waitForLeader(
                    seeds: seeds, timeout: spawnTimeout, logger: logger, stillRunning: { spawned.exitedNode() })
            } else {
                (nodes, leader) = try await ClusterProbe.discover(
                    seeds: seeds, deadline: discoveryTimeout, logger: logger)
            }
            progress("cluster: \(nodes.joined(separator: ", ")); leader \(leader ?? "unknown")")
            driver = NativeDriver(
                seeds: NativeDriver.seedAddresses(nodes: nodes, leader: leader, configuration: configuration),
                stateMachine: configuration.stateMachine, consistency: configuration.consistency,
                readsOnAllNodes: configuration.target == .all, logger: logger)
        case .http:
            driver = HTTPDriver(
                addresses: spawned?.httpAddresses ?? configuration.httpAddresses,
                connections: configuration.connections,
                consistency: configuration.consistency)
        }
        let runner = LoadRunner(configuration: configuration, driver: driver)
        let measurement: Measurement
        do {
            if configuration.preload { try await runner.preload(progress: progress) }
            measurement = await runner.run(progress: progress)
        } catch {
            await driver.close()
            throw error
        }
        await driver.close()
        if Task.isCancelled { throw LoadError(kind: "cancelled", message: "the run was interrupted") }
        return LoadReport(
            parameters: configuration.reportParameters(cluster: clusterText), target: driver.system,
            requests: measurement.requests, errors: measurement.errors, errorsByKind: measurement.errorsByKind,
            casConflicts: measurement.casConflicts, durationSeconds: configuration.duration,
            latency: measurement.latency, nodeMemory: spawned?.memory() ?? [])
    }
}
