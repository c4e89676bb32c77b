import BifrostRPC
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Runs the load of a ``LoadConfiguration`` through a ``LoadDriver``: the optional preload, the warm-up and the
/// measured window, with a progress line per second.
///
/// The load comes from `clients * pipeline` *lanes*; each lane has one request outstanding at a time, so each
/// client has `pipeline`. Lane `l` belongs to client `l / pipeline`, which uses connection
/// `client % connections`. Each lane draws its operations from its own ``WorkloadGenerator`` (stream `l` of the
/// seed; a sequential lane starts at `l * keyspace / lanes`).
///
/// - **Closed loop** (default): a lane sends its next request as soon as the previous one completes.
/// - **Open loop** (`--rate N`): each lane sends on a fixed schedule, one request every `lanes / N` seconds
///   (lanes staggered across the interval). A lane whose request is still outstanding at its next slot skips
///   the slots it missed, and its latency is recorded with HdrHistogram's `recordCorrectedValue`, which adds
///   the samples of the skipped slots: the latencies those requests would have seen had the load not waited for
///   the system (coordinated omission). With at most `lanes` requests in flight it is the model of wrk2 rather
///   than a generator with unbounded concurrency.
///
/// With a driver that ``LoadDriver/prefersCompletionHandlers`` (the native driver on the map), both loops run as
/// ``CompletionLane``s: no task per operation, and in the open loop a timer on the connection's event loop instead
/// of a task sleeping until each slot. Other drivers run each lane as a task.
public struct LoadRunner: Sendable {
    /// The run's parameters.
    public let configuration: LoadConfiguration
    /// Where operations go.
    public let driver: any LoadDriver
    /// How long lanes still in flight at the end of the window may take before they are cancelled (their
    /// results are outside the window and discarded anyway).
    public var drainGrace: Duration = .seconds(3)

    /// Creates a runner.
    public init(configuration: LoadConfiguration, driver: any LoadDriver) {
        self.configuration = configuration
        self.driver = driver
    }

    /// The largest number of keys one preload command carries.
    static let preloadChunkKeys = 1000
    /// The largest payload of one preload command, about 512 KiB.
    static let preloadChunkBytes = 512 * 1024

    /// The keys per preload command for this configuration.
    public var preloadChunkSize: Int {
        let entryBytes = configuration.keySize + configuration.valueSize + 8
        return max(1, min(Self.preloadChunkKeys, Self.preloadChunkBytes / entryBytes))
    }

    /// Writes every key of the keyspace once, in chunks of ``preloadChunkSize`` keys (one `putAll` each), at
    /// most `connections` chunks at a time. Values come from stream `UInt64.max` of the seed.
    public func preload(progress: @escaping @Sendable (String) -> Void) async throws(LoadError) {
        let keyspace = configuration.keyspace
        let chunk = UInt64(preloadChunkSize)
        let chunks = (keyspace + chunk - 1) / chunk
        let concurrency = min(configuration.connections, Int(min(chunks, UInt64(Int.max))))
        let keys = KeyFormat(size: configuration.keySize)
        var random = SplitMix64(seed: SplitMix64.derive(seed: configuration.seed, stream: .max))
        let template = ValueFactory(size: configuration.valueSize, stream: .max, using: &random)
        let next = ChunkCounter()
        let started = ContinuousClock.now
        let result: Result<Void, LoadError> = await withTaskGroup(of: Result<Void, LoadError>.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var values = template
                    while !Task.isCancelled {
                        let index = next.take()
                        guard index < chunks else { return .success(()) }
                        let first = index * chunk
                        let entries = (first..<min(first + chunk, keyspace)).map {
                            LoadEntry(key: keys.key($0), value: values.next())
                        }
                        do throws(LoadError) {
                            try await driver.preload(entries, connection: worker)
                        } catch {
                            return .failure(error)
                        }
                    }
                    return .failure(LoadError(kind: "setup", message: "the preload was cancelled"))
                }
            }
            for await result in group {
                if case .failure = result {
                    group.cancelAll()
                    return result
                }
            }
            return .success(())
        }
        try result.get()
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        progress(
            "preloaded \(keyspace) keys in \(chunks) putAll commands of up to \(chunk) keys in "
                + String(format: "%.2f s (%.0f keys/s)", seconds, Double(keyspace) / max(seconds, 1e-9)))
    }

    /// Runs the warm-up and the measured window; returns the measurement. `progress` receives one line per
    /// second. Cancelling the calling task ends the run early (the measurement is then partial).
    public func run(progress: @escaping @Sendable (String) -> Void) async -> Measurement {
        let start = ContinuousClock.now
        let measureStart = start + .seconds(configuration.warmup)
        let measureEnd = measureStart + .seconds(configuration.duration)
        let recorder = LoadRecorder(measureStart: measureStart, measureEnd: measureEnd)
        let lanes = configuration.lanes
        let interval: Duration? = configuration.rate.map { .seconds(Double(lanes) / $0) }

        /// Which child task of the run ended.
        enum Finished {
            /// A lane (its window ended, or it was cancelled).
            case lane
            /// The watchdog: the drain grace after the window passed.
            case watchdog
            /// The progress reporter (cancelled).
            case reporter
        }
        var executors: [Int: any TaskExecutor] = [:]
        for connection in 0..<configuration.connections {
            if let executor = await driver.executor(connection: connection) { executors[connection] = executor }
        }
        let timers = LaneTimers(
            resolution: interval.map { Self.timerResolution(interval: $0) } ?? .zero, origin: start)
        await withTaskGroup(of: Finished.self) { group in
            for lane in 0..<lanes {
                let connection = (lane / configuration.pipeline) % configuration.connections
                if driver.prefersCompletionHandlers {
                    let schedule = interval.map { interval in
                        LaneSchedule(
                            interval: interval, first: start + interval * (Double(lane) / Double(lanes)),
                            timer: timers.timer(for: executors[connection]))
                    }
                    group.addTask {
                        await CompletionLane(
                            generator: generator(lane), driver: driver, connection: connection, recorder: recorder,
                            end: measureEnd, schedule: schedule
                        ).run()
                        return .lane
                    }
                    continue
                }
                group.addTask(executorPreference: executors[connection]) {
                    await runLane(lane, recorder: recorder, start: start, end: measureEnd, interval: interval)
                    return .lane
                }
            }
            group.addTask {
                // Lanes still waiting for replies this long after the window are cancelled.
                try? await Task.sleep(until: measureEnd + drainGrace)
                return .watchdog
            }
            group.addTask {
                await report(progress: progress, recorder: recorder, start: start, measureStart: measureStart)
                return .reporter
            }
            var running = lanes
            for await finished in group {
                switch finished {
                case .lane:
                    running -= 1
                    if running == 0 { group.cancelAll() }
                case .watchdog:
                    group.cancelAll()
                case .reporter:
                    break
                }
            }
        }
        return recorder.measurement()
    }

    /// The resolution of the open loop's timers for lanes that send every `interval`: 1 ms (as wrk2's), or a
    /// quarter of the interval when that is shorter, so that a lane never waits a whole interval late.
    static func timerResolution(interval: Duration) -> Duration {
        min(.milliseconds(1), interval / 4)
    }

    /// The open-loop timers of a run: one per event loop, shared by the lanes on it.
    final class LaneTimers {
        let resolution: Duration
        let origin: ContinuousClock.Instant
        private var byLoop: [ObjectIdentifier: CoalescingLaneTimer] = [:]
        /// The loop of lanes whose driver gives no executor on one.
        private lazy var sharedLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()

        init(resolution: Duration, origin: ContinuousClock.Instant) {
            self.resolution = resolution
            self.origin = origin
        }

        /// The timer of the loop behind `executor` (the connection's, when the driver gives an executor on one:
        /// the sends then need no hop), else the one timer on one of NIO's shared loops.
        func timer(for executor: (any TaskExecutor)?) -> CoalescingLaneTimer {
            let loop = (executor as? EventLoopTaskExecutor)?.eventLoop ?? sharedLoop
            if let timer = byLoop[ObjectIdentifier(loop)] { return timer }
            let timer = CoalescingLaneTimer(loop: loop, resolution: resolution, origin: origin)
            byLoop[ObjectIdentifier(loop)] = timer
            return timer
        }
    }

    /// The operations of lane `lane`.
    func generator(_ lane: Int) -> WorkloadGenerator {
        WorkloadGenerator(
            mix: configuration.mix, distribution: configuration.effectiveDistribution,
            keyspace: configuration.keyspace, keys: KeyFormat(size: configuration.keySize),
            valueSize: configuration.valueSize, seed: configuration.seed, stream: UInt64(lane),
            sequentialStart: UInt64(lane) * (configuration.keyspace / UInt64(configuration.lanes)))
    }

    /// One lane: operations until the end of the window (or cancellation).
    func runLane(
        _ lane: Int, recorder: LoadRecorder, start: ContinuousClock.Instant, end: ContinuousClock.Instant,
        interval: Duration?
    ) async {
        let lanes = configuration.lanes
        let connection = (lane / configuration.pipeline) % configuration.connections
        var generator = generator(lane)
        // Open loop: lanes are staggered over one interval, so that sends are spread evenly.
        var slot = interval.map { start + $0 * (Double(lane) / Double(lanes)) }
        while !Task.isCancelled {
            if let scheduled = slot {
                guard scheduled < end else { return }
                do {
                    try await Task.sleep(until: scheduled)
                } catch {
                    return
                }
            }
            let sent = ContinuousClock.now
            guard sent < end else { return }
            let operation = generator.next()
            let outcome: Result<OperationOutcome, LoadError>
            do throws(LoadError) {
                outcome = .success(try await driver.perform(operation, connection: connection))
            } catch {
                outcome = .failure(error)
            }
            let completed = ContinuousClock.now
            // A reply to a cancelled operation (the run was interrupted) says nothing about the system.
            if Task.isCancelled { return }
            recorder.record(outcome, sent: sent, completed: completed, expectedInterval: interval)
            if let interval, let scheduled = slot {
                // The next slot; the slots this request overran are skipped (and accounted for by the corrected
                // recording above).
                slot = LaneSchedule.nextSlot(after: scheduled, completed: completed, interval: interval)
            }
        }
    }

    /// Prints a progress line at every whole second after `start` until cancelled.
    func report(
        progress: @Sendable (String) -> Void, recorder: LoadRecorder, start: ContinuousClock.Instant,
        measureStart: ContinuousClock.Instant
    ) async {
        var second = 1
        while true {
            let tick = start + .seconds(second)
            do {
                try await Task.sleep(until: tick)
            } catch {
                // Cancelled when the lanes are done, which is at the end of the window: print that last second
                // when the end is (about) its tick.
                if ContinuousClock.now + .milliseconds(100) >= tick {
                    progress(
                        Self.progressLine(
                            elapsed: second, warmup: tick <= measureStart, stats: recorder.takeInterval()))
                }
                return
            }
            let stats = recorder.takeInterval()
            progress(
                Self.progressLine(
                    elapsed: second, warmup: tick <= measureStart, stats: stats))
            second += 1
        }
    }

    /// `[  3s] measure  ops/s 12345  p99 4.100 ms  errors 0`.
    public static func progressLine(elapsed: Int, warmup: Bool, stats: IntervalStats) -> String {
        let time = String(elapsed)
        return "[" + String(repeating: " ", count: max(0, 4 - time.count)) + time + "s] "
            + (warmup ? "warmup " : "measure") + "  ops/s \(stats.requests)  p99 "
            + String(format: "%.3f", stats.p99) + " ms  errors \(stats.errors)"
    }
}

/// Hands out preload chunk numbers 0, 1, 2, ... to the preload workers.
final class ChunkCounter: Sendable {
    private let next = Atomic<UInt64>(0)

    /// The next chunk number.
    func take() -> UInt64 {
        next.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}
