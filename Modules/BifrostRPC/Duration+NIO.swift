import NIOCore

extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.max`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return whole.addingReportingOverflow(attoseconds / 1_000_000_000).overflow
            ? .max : whole + attoseconds / 1_000_000_000
    }

    /// The same duration as NIO's `TimeAmount`.
    var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }

    /// Whole microseconds, for the wire (at least 1 for any positive duration).
    var wireMicroseconds: UInt64 {
        let micros = nanoseconds / 1000
        return micros <= 0 ? 1 : UInt64(micros)
    }
}
