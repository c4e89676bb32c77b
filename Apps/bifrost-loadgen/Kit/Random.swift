/// SplitMix64 (Steele, Lea and Flood): a small, fast, seedable generator. Every random choice of the load
/// generator comes from one of these, seeded from `--seed`, so a run's sequence of operations is reproducible and
/// tests are exact.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's state; each draw advances it by the golden-ratio increment.
    public private(set) var state: UInt64

    /// Creates a generator whose sequence is fully determined by `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's output function: a bijective mix of 64 bits.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed for stream `stream` derived from `seed`: distinct streams get unrelated sequences.
    public static func derive(seed: UInt64, stream: UInt64) -> UInt64 {
        mix(seed ^ mix(stream &+ 0x5851_F42D_4C95_7F2D))
    }
}

extension RandomNumberGenerator {
    /// A uniform integer in `0..<bound` (`bound` > 0), by Lemire's multiply-and-reject method. Written out (rather
    /// than `UInt64.random(in:using:)`) so that the sequence for a seed is fixed by this code alone.
    public mutating func uniform(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "uniform(below:) needs a positive bound")
        var product = bound.multipliedFullWidth(by: next())
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = bound.multipliedFullWidth(by: next())
            }
        }
        return product.high
    }

    /// A uniform `Double` in `[0, 1)` with 53 random bits.
    public mutating func unitInterval() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}
