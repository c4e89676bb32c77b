import Histogram
import Synchronization

/// One second of progress: what the stderr progress line shows.
public struct IntervalStats: Sendable, Equatable {
    /// Operations that succeeded in the interval (warm-up included).
    public var requests: Int
    /// Operations that failed in the interval.
    public var errors: Int
    /// The 99th percentile latency of the interval's successes, in milliseconds (0 without any).
    public var p99: Double

    /// Creates the figures of an interval.
    public init(requests: Int, errors: Int, p99: Double) {
        self.requests = requests
        self.errors = errors
        self.p99 = p99
    }
}

/// The totals of the measured window.
public struct Measurement: Sendable, Equatable {
    /// Operations that succeeded.
    public var requests: Int
    /// Operations that failed.
    public var errors: Int
    /// Failures by kind.
    public var errorsByKind: [String: Int]
    /// Read-modify-writes whose compare-and-swap lost to another writer.
    public var casConflicts: Int
    /// Latencies of the successes.
    public var latency: LatencySummary
}

/// Collects latencies (HdrHistogram, microseconds, 3 significant digits, up to 60 s) and counts, shared by every
/// lane of a run.
///
/// An operation is *measured* when it completes inside the measured window `[measureStart, measureEnd)`;
/// earlier completions are warm-up and later ones are discarded. Every completion counts towards the current
/// progress interval. In an open loop, latencies are recorded with `recordCorrectedValue` and the lane's
/// expected interval, which adds the samples a stalled lane failed to send (coordinated omission).
public final class LoadRecorder: Sendable {
    /// The largest latency the histograms track, in microseconds (60 s); larger ones are recorded as this.
    public static let highestTrackableMicros: UInt64 = 60_000_000

    /// The start of the measured window.
    public let measureStart: ContinuousClock.Instant
    /// The end of the measured window.
    public let measureEnd: ContinuousClock.Instant

    private struct State: Sendable {
        var total = LoadRecorder.newHistogram()
        var interval = LoadRecorder.newHistogram()
        var requests = 0
        var errors = 0
        var casConflicts = 0
        var errorsByKind: [String: Int] = [:]
        var intervalRequests = 0
        var intervalErrors = 0
    }

    private let state = Mutex(State())

    /// Creates a recorder for the measured window `[measureStart, measureEnd)`.
    public init(measureStart: ContinuousClock.Instant, measureEnd: ContinuousClock.Instant) {
        self.measureStart = measureStart
        self.measureEnd = measureEnd
    }

    /// An empty histogram of microseconds, 1 µs to 60 s, 3 significant digits.
    static func newHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableMicros,
            numberOfSignificantValueDigits: .three)
    }

    /// `duration` in whole microseconds, at least 1 and at most ``highestTrackableMicros``.
    public static func micros(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 1 }
        let value = UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
        return min(max(value, 1), highestTrackableMicros)
    }

    /// Records a success that took `latency` and completed at `completed`. `expectedInterval` is the lane's
    /// interval between sends in an open loop (`nil` in a closed loop).
    public func recordSuccess(
        latency: Duration, completed: ContinuousClock.Instant, expectedInterval: Duration?,
        outcome: OperationOutcome = .done
    ) {
        let value = Self.micros(latency)
        let interval = expectedInterval.map(Self.micros) ?? 0
        let measured = completed >= measureStart && completed < measureEnd
        state.withLock { state in
            state.intervalRequests += 1
            Self.record(value, interval: interval, in: &state.interval)
            guard measured else { return }
            state.requests += 1
            if outcome == .casConflict { state.casConflicts += 1 }
            Self.record(value, interval: interval, in: &state.total)
        }
    }

    /// Records the outcome of an operation sent at `sent` that completed at `completed`: a success with its
    /// latency (see ``recordSuccess(latency:completed:expectedInterval:outcome:)``), or a failure by kind.
    public func record(
        _ outcome: Result<OperationOutcome, LoadError>, sent: ContinuousClock.Instant,
        completed: ContinuousClock.Instant, expectedInterval: Duration?
    ) {
        switch outcome {
        case .success(let result):
            recordSuccess(
                latency: completed - sent, completed: completed, expectedInterval: expectedInterval, outcome: result)
        case .failure(let error):
            recordFailure(kind: error.kind, completed: completed)
        }
    }

    /// Records a failure of kind `kind` that completed at `completed`.
    public func recordFailure(kind: String, completed: ContinuousClock.Instant) {
        let measured = completed >= measureStart && completed < measureEnd
        state.withLock { state in
            state.intervalErrors += 1
            guard measured else { return }
            state.errors += 1
            state.errorsByKind[kind, default: 0] += 1
        }
    }

    private static func record(_ value: UInt64, interval: UInt64, in histogram: inout Histogram<UInt64>) {
        if interval > 0 {
            // Only fails past the highest trackable value, which `micros` already clamps to.
            _ = histogram.recordCorrectedValue(value, expectedInterval: interval)
        } else {
            _ = histogram.record(value)
        }
    }

    /// The current interval's figures; starts a new interval.
    public func takeInterval() -> IntervalStats {
        state.withLock { state in
            let stats = IntervalStats(
                requests: state.intervalRequests, errors: state.intervalErrors,
                p99: state.interval.totalCount > 0 ? Double(state.interval.valueAtPercentile(99)) / 1000 : 0)
            state.intervalRequests = 0
            state.intervalErrors = 0
            state.interval.reset()
            return stats
        }
    }

    /// The totals of the measured window so far.
    public func measurement() -> Measurement {
        state.withLock { state in
            Measurement(
                requests: state.requests, errors: state.errors, errorsByKind: state.errorsByKind,
                casConflicts: state.casConflicts, latency: Self.summary(of: state.total))
        }
    }

    /// Mean, percentiles and maximum of `histogram`, in milliseconds.
    public static func summary(of histogram: Histogram<UInt64>) -> LatencySummary {
        guard histogram.totalCount > 0 else { return .zero }
        /// Microseconds as milliseconds.
        func millis(_ micros: UInt64) -> Double { Double(micros) / 1000 }
        return LatencySummary(
            mean: histogram.mean / 1000,
            p50: millis(histogram.valueAtPercentile(50)),
            p90: millis(histogram.valueAtPercentile(90)),
            p99: millis(histogram.valueAtPercentile(99)),
            p999: millis(histogram.valueAtPercentile(99.9)),
            max: millis(histogram.maxRecorded))
    }
}
