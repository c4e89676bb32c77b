import BifrostLoadgenKit
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A driver that answers at once, counts what it is asked, fails every `failEvery`-th operation, and signals
/// ``reached`` once it has seen `threshold` operations.
final class FakeDriver: LoadDriver {
    /// `fake`.
    let system = "fake"
    /// Every this many operations fail with `timeout` (0: none).
    let failEvery: Int
    /// The operation count at which ``reached`` yields.
    let threshold: Int
    /// Yields once, at the `threshold`-th operation.
    let reached: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    /// What the driver was asked.
    struct Counts {
        /// Operations performed.
        var operations = 0
        /// Operations per connection.
        var byConnection: [Int: Int] = [:]
        /// Operations per kind.
        var byKind: [OperationKind: Int] = [:]
        /// Operations that came through the completion-handler `perform`.
        var withCompletionHandlers = 0
        /// Every preloaded key, in arrival order.
        var preloaded: [String] = []
        /// The size of every preload chunk.
        var preloadChunks: [Int] = []
        /// Preload calls running now.
        var preloadsInFlight = 0
        /// The most preload calls that ran at once.
        var maxPreloadsInFlight = 0
    }

    /// The counts, shared by the lanes and the test.
    let counts = Mutex(Counts())

    /// With completion handlers: every this many operations, the reply comes from a task; the others reply on the
    /// caller's stack, before `perform` returns. 0: the lanes await ``perform(_:connection:)``.
    let asynchronousEvery: Int

    /// A driver that fails every `failEvery`-th operation and signals at the `threshold`-th.
    init(failEvery: Int = 0, threshold: Int = .max, asynchronousEvery: Int = 0) {
        self.failEvery = failEvery
        self.threshold = threshold
        self.asynchronousEvery = asynchronousEvery
        (reached, signal) = AsyncStream.makeStream(of: Void.self)
    }

    /// Counts the operation; fails every `failEvery`-th; half the read-modify-writes lose their swap.
    func perform(_ operation: Operation, connection: Int) async throws(LoadError) -> OperationOutcome {
        let number = count(operation, connection: connection)
        await Task.yield()
        return try outcome(of: operation, number: number).get()
    }

    var prefersCompletionHandlers: Bool { asynchronousEvery > 0 }

    /// As ``perform(_:connection:)``, replying at once except every `asynchronousEvery`-th operation.
    func perform(
        _ operation: Operation, connection: Int,
        completion: @escaping @Sendable (Result<OperationOutcome, LoadError>) -> Void
    ) {
        let number = count(operation, connection: connection, withCompletionHandler: true)
        let result = outcome(of: operation, number: number)
        if number % asynchronousEvery == 0 {
            Task { completion(result) }
        } else {
            completion(result)
        }
    }

    private func count(_ operation: Operation, connection: Int, withCompletionHandler: Bool = false) -> Int {
        let number = counts.withLock { counts -> Int in
            counts.operations += 1
            if withCompletionHandler { counts.withCompletionHandlers += 1 }
            counts.byConnection[connection, default: 0] += 1
            counts.byKind[operation.kind, default: 0] += 1
            return counts.operations
        }
        if number == threshold {
            signal.yield()
            signal.finish()
        }
        return number
    }

    private func outcome(of operation: Operation, number: Int) -> Result<OperationOutcome, LoadError> {
        if failEvery > 0 && number % failEvery == 0 {
            return .failure(LoadError(kind: "timeout", message: "fake failure \(number)"))
        }
        return .success(operation.kind == .readModifyWrite && number % 2 == 0 ? .casConflict : .done)
    }

    /// Records the chunk and how many preloads run at once.
    func preload(_ entries: [LoadEntry], connection: Int) async throws(LoadError) {
        counts.withLock { counts in
            counts.preloadsInFlight += 1
            counts.maxPreloadsInFlight = max(counts.maxPreloadsInFlight, counts.preloadsInFlight)
        }
        await Task.yield()
        counts.withLock { counts in
            counts.preloadsInFlight -= 1
            counts.preloaded += entries.map(\.key)
            counts.preloadChunks.append(entries.count)
        }
    }

    /// Nothing to close.
    func close() async {}
}

/// Runs `runner` until `driver` has seen its threshold of operations, then cancels the run and returns what
/// it measured. The run's window is long, so it is the threshold, not the clock, that ends it.
func runUntilThreshold(_ runner: LoadRunner, _ driver: FakeDriver) async -> Measurement {
    let task = Task { await runner.run { _ in } }
    for await _ in driver.reached { break }
    task.cancel()
    return await task.value
}

@Suite("Runner with a fake driver", .timeLimit(.minutes(2)))
struct RunnerTests {
    /// A validated configuration against a (never contacted) external cluster with a long window, changed by `change`.
    static func configuration(_ change: (inout CommandLineOptions) -> Void) throws -> LoadConfiguration {
        var options = CommandLineOptions()
        options.cluster = "127.0.0.1:1"
        options.warmup = 0
        options.duration = 600
        change(&options)
        return try options.configuration()
    }

    @Test("closed loop: lanes are spread over every connection, failures are counted by kind")
    func closedLoop() async throws {
        let configuration = try Self.configuration { options in
            options.workload = "ycsb-f"
            options.clients = 6
            options.connections = 3
            options.pipeline = 2
        }
        let driver = FakeDriver(failEvery: 7, threshold: 3000)
        let measurement = await runUntilThreshold(LoadRunner(configuration: configuration, driver: driver), driver)
        let counts = driver.counts.withLock { $0 }
        #expect(Set(counts.byConnection.keys) == [0, 1, 2])
        #expect(Set(counts.byKind.keys) == [.read, .readModifyWrite])
        #expect(measurement.requests > 0)
        #expect(measurement.errors > 0)
        #expect(measurement.errorsByKind == ["timeout": measurement.errors])
        #expect(measurement.casConflicts > 0)
        #expect(measurement.requests + measurement.errors <= counts.operations)
        // Every operation but the last of each lane (cancelled) was recorded.
        #expect(measurement.requests + measurement.errors >= counts.operations - configuration.lanes)
        #expect(measurement.latency.p50 <= measurement.latency.p99)
        #expect(measurement.latency.p99 <= measurement.latency.max)
    }

    @Test("closed loop with completion handlers: replies before the send returns do not recurse; all are recorded")
    func completionHandlers() async throws {
        let configuration = try Self.configuration { options in
            options.workload = "ycsb-f"
            options.clients = 4
            options.connections = 2
        }
        // Thousands of replies in a row on the sender's stack: a lane that recursed would overflow its stack.
        let driver = FakeDriver(failEvery: 7, threshold: 40_000, asynchronousEvery: 5000)
        let measurement = await runUntilThreshold(LoadRunner(configuration: configuration, driver: driver), driver)
        let counts = driver.counts.withLock { $0 }
        #expect(Set(counts.byConnection.keys) == [0, 1])
        #expect(counts.operations >= 40_000)
        #expect(measurement.errorsByKind == ["timeout": measurement.errors])
        #expect(measurement.errors > 0)
        #expect(measurement.casConflicts > 0)
        // Every operation sent was recorded, but for at most one per lane in flight at the end.
        #expect(measurement.requests + measurement.errors <= counts.operations)
        #expect(measurement.requests + measurement.errors >= counts.operations - configuration.lanes)
    }

    /// `asynchronousEvery` 0: the lanes are tasks; otherwise completion-handler lanes on timers, most replies coming
    /// on the sender's stack (the lane must not send again from there).
    @Test(
        "open loop: lanes never send more than the schedule allows; every reply but each lane's last is recorded",
        arguments: [0, 4])
    func openLoop(asynchronousEvery: Int) async throws {
        let configuration = try Self.configuration { options in
            options.rate = 2000
            options.clients = 4
            options.connections = 2
        }
        let driver = FakeDriver(failEvery: 9, threshold: 200, asynchronousEvery: asynchronousEvery)
        let before = ContinuousClock.now
        let measurement = await runUntilThreshold(LoadRunner(configuration: configuration, driver: driver), driver)
        let elapsed = (ContinuousClock.now - before) / .seconds(1)
        let counts = driver.counts.withLock { $0 }
        // Each lane has one slot per 2 ms from the run's start (staggered by 0.5 ms): at most 2000 sends per second
        // of the run, plus the first slot of each lane.
        #expect(counts.operations >= 200)
        #expect(Double(counts.operations) <= 2000 * elapsed + Double(configuration.lanes))
        #expect(Set(counts.byConnection.keys) == [0, 1])
        #expect(counts.withCompletionHandlers == (asynchronousEvery > 0 ? counts.operations : 0))
        #expect(measurement.errors > 0)
        #expect(measurement.errorsByKind == ["timeout": measurement.errors])
        #expect(measurement.requests + measurement.errors <= counts.operations)
        #expect(measurement.requests + measurement.errors >= counts.operations - configuration.lanes)
    }

    @Test("preload: every key once, in chunks of at most 1,000, at most `connections` at a time")
    func preload() async throws {
        let configuration = try Self.configuration { options in
            options.keyspace = 2500
            options.keySize = 8
            options.clients = 4
            options.connections = 2
            options.preload = true
        }
        let driver = FakeDriver()
        let runner = LoadRunner(configuration: configuration, driver: driver)
        #expect(runner.preloadChunkSize == 1000)
        try await runner.preload { _ in }
        let counts = driver.counts.withLock { $0 }
        #expect(counts.preloaded.count == 2500)
        #expect(Set(counts.preloaded) == Set((0..<2500).map { KeyFormat(size: 8).key(UInt64($0)) }))
        #expect(counts.preloadChunks.sorted() == [500, 1000, 1000])
        #expect(counts.maxPreloadsInFlight <= 2)
    }

    @Test("preload chunks shrink for large values")
    func preloadChunkBytes() throws {
        let configuration = try Self.configuration { options in
            options.valueSize = 100_000
            options.preload = true
        }
        #expect(LoadRunner(configuration: configuration, driver: FakeDriver()).preloadChunkSize == 5)
    }
}

/// A task executor on one event loop (what the native driver hands out for a connection).
final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// A driver with an executor for connection 0 only, recording whether each operation ran on its loop.
final class ExecutorDriver: LoadDriver {
    let system = "fake"
    let executor: LoopExecutor
    /// Operations of connection 0 on / off the loop, and of other connections on / off it.
    let placements = Mutex<[String: Int]>([:])
    let reached: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init(loop: any EventLoop) {
        executor = LoopExecutor(loop)
        (reached, signal) = AsyncStream.makeStream(of: Void.self)
    }

    func executor(connection: Int) async -> (any TaskExecutor)? { connection == 0 ? executor : nil }

    func perform(_ operation: Operation, connection: Int) async throws(LoadError) -> OperationOutcome {
        let key = "\(connection == 0 ? "0" : "other") \(executor.loop.inEventLoop ? "on" : "off")"
        let total = placements.withLock { placements -> Int in
            placements[key, default: 0] += 1
            return placements.values.reduce(0, +)
        }
        if total == 2000 { signal.yield() }
        await Task.yield()
        return .done
    }

    func preload(_ entries: [LoadEntry], connection: Int) async throws(LoadError) {}

    func close() async {}
}

@Suite("Runner lanes and driver executors", .timeLimit(.minutes(2)))
struct RunnerExecutorTests {
    @Test("the lanes of a connection run on the executor the driver gives for it; the others do not")
    func lanesPreferTheirConnectionsExecutor() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = try RunnerTests.configuration { options in
            options.clients = 4
            options.connections = 2
        }
        let driver = ExecutorDriver(loop: group.next())
        let runner = LoadRunner(configuration: configuration, driver: driver)
        let task = Task { await runner.run { _ in } }
        for await _ in driver.reached { break }
        task.cancel()
        _ = await task.value
        let placements = driver.placements.withLock { $0 }
        #expect(placements["0 on", default: 0] > 0)
        #expect(placements["0 off", default: 0] == 0)
        #expect(placements["other on", default: 0] == 0)
        #expect(placements["other off", default: 0] > 0)
        try await group.shutdownGracefully()
    }
}
