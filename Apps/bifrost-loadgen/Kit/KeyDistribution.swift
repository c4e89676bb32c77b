import Foundation

/// How the keys of operations are chosen from the keyspace (`--distribution`).
public enum KeyDistribution: String, Sendable, CaseIterable {
    /// Every key equally likely.
    case uniform
    /// YCSB's scrambled Zipfian with theta 0.99: a few keys are hot, and the hot keys are scattered over the
    /// keyspace rather than being the lowest ones.
    case zipfian
    /// Keys in order, wrapping at the end of the keyspace (each client starts at its own offset).
    case sequential
}

/// The Zipfian generator of YCSB (`site.ycsb.generator.ZipfianGenerator`, after Gray et al., "Quickly Generating
/// Billion-Record Synthetic Databases", SIGMOD 1994): item `i` (0-based) is drawn with probability about
/// `1 / ((i + 1)^theta * zeta(n, theta))`; items 0 and 1 get exactly `1 / zeta` and `0.5^theta / zeta`.
///
/// A pure value: the randomness comes from the generator passed to ``next(using:)``.
public struct ZipfianGenerator: Sendable, Equatable {
    /// The number of items, `n`.
    public let items: UInt64
    /// The skew, `theta` (0.99 in YCSB).
    public let theta: Double
    /// `zeta(n, theta) = sum over i in 1...n of 1 / i^theta`.
    public let zetan: Double
    /// `1 / (1 - theta)`.
    let alpha: Double
    /// YCSB's `eta`: `(1 - (2/n)^(1 - theta)) / (1 - zeta(2, theta) / zeta(n, theta))`.
    let eta: Double
    /// `0.5^theta`: the share of item 1 relative to item 0.
    let halfPowTheta: Double

    /// Creates a generator over `items` items (at least 2). `zetan` may be given when it is known (computing it
    /// costs `items` powers); otherwise it is computed.
    public init(items: UInt64, theta: Double = 0.99, zetan: Double? = nil) {
        precondition(items >= 2, "a Zipfian generator needs at least two items")
        precondition(theta > 0 && theta < 1, "theta must be in (0, 1)")
        self.items = items
        self.theta = theta
        let zetan = zetan ?? Self.zeta(items, theta: theta)
        self.zetan = zetan
        let zeta2theta = Self.zeta(2, theta: theta)
        self.alpha = 1.0 / (1.0 - theta)
        self.eta = (1 - pow(2.0 / Double(items), 1 - theta)) / (1 - zeta2theta / zetan)
        self.halfPowTheta = pow(0.5, theta)
    }

    /// `sum over i in 1...n of 1 / i^theta`.
    public static func zeta(_ n: UInt64, theta: Double) -> Double {
        var sum = 0.0
        var i: UInt64 = 1
        while i <= n {
            sum += 1 / pow(Double(i), theta)
            i += 1
        }
        return sum
    }

    /// The next item, in `0..<items`.
    public func next(using generator: inout some RandomNumberGenerator) -> UInt64 {
        let u = generator.unitInterval()
        let uz = u * zetan
        if uz < 1.0 { return 0 }
        if uz < 1.0 + halfPowTheta { return 1 }
        let scaled = Double(items) * pow(eta * u - eta + 1, alpha)
        // The formula stays below `items` in exact arithmetic; clamp against rounding.
        return min(UInt64(max(scaled, 0)), items - 1)
    }
}

/// YCSB's scrambled Zipfian (`ScrambledZipfianGenerator`): a Zipfian draw over 10^10 items with theta 0.99 (whose
/// zeta YCSB precomputes as 26.46902820178302), hashed with 64-bit FNV-1a and reduced modulo the keyspace. The
/// popularity of items is Zipfian, but the popular keys are spread over the keyspace.
public struct ScrambledZipfianGenerator: Sendable, Equatable {
    /// YCSB's item count for the underlying Zipfian draw.
    public static let itemCount: UInt64 = 10_000_000_000
    /// YCSB's precomputed `zeta(10^10 + 1, 0.99)`.
    public static let zetan = 26.46902820178302
    /// The theta YCSB uses (and `--distribution zipfian` uses).
    public static let theta = 0.99

    /// The number of keys.
    public let keyspace: UInt64
    /// The underlying Zipfian draw.
    public let zipfian: ZipfianGenerator

    /// Creates a generator over `keyspace` keys (at least 1).
    public init(keyspace: UInt64) {
        precondition(keyspace >= 1, "the keyspace must not be empty")
        self.keyspace = keyspace
        // YCSB builds `ZipfianGenerator(0, ITEM_COUNT, ...)`, whose item count is ITEM_COUNT + 1.
        self.zipfian = ZipfianGenerator(items: Self.itemCount + 1, theta: Self.theta, zetan: Self.zetan)
    }

    /// The key an item of the Zipfian draw lands on.
    public func key(forItem item: UInt64) -> UInt64 {
        Self.fnvHash64(item) % keyspace
    }

    /// The next key, in `0..<keyspace`.
    public func next(using generator: inout some RandomNumberGenerator) -> UInt64 {
        key(forItem: zipfian.next(using: &generator))
    }

    /// YCSB's `Utils.fnvhash64`: FNV-1a over the 8 bytes of `value`, least significant first, then the absolute
    /// value as a signed 64-bit integer (`Int64.min` maps to 2^63).
    public static func fnvHash64(_ value: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var rest = value
        for _ in 0..<8 {
            hash ^= rest & 0xFF
            hash &*= 1_099_511_628_211
            rest >>= 8
        }
        return Int64(bitPattern: hash).magnitude
    }
}

/// Chooses the key index (in `0..<keyspace`) of each operation, following a ``KeyDistribution``.
///
/// A pure value: randomness comes from the generator passed to ``next(using:)``; a sequential chooser keeps its
/// position.
public struct KeyChooser: Sendable, Equatable {
    /// The per-distribution state.
    enum State: Sendable, Equatable {
        /// Uniform: no state.
        case uniform
        /// Scrambled Zipfian: the generator's constants.
        case zipfian(ScrambledZipfianGenerator)
        /// Sequential: the next key.
        case sequential(next: UInt64)
    }

    /// The distribution.
    public let distribution: KeyDistribution
    /// The number of keys.
    public let keyspace: UInt64
    /// The current state (a sequential chooser's next key).
    var state: State

    /// Creates a chooser over `keyspace` keys (at least 1). A sequential chooser starts at `start` (modulo the
    /// keyspace); the others ignore it.
    public init(distribution: KeyDistribution, keyspace: UInt64, start: UInt64 = 0) {
        precondition(keyspace >= 1, "the keyspace must not be empty")
        self.distribution = distribution
        self.keyspace = keyspace
        switch distribution {
        case .uniform: state = .uniform
        case .zipfian: state = .zipfian(ScrambledZipfianGenerator(keyspace: keyspace))
        case .sequential: state = .sequential(next: start % keyspace)
        }
    }

    /// The next key index.
    public mutating func next(using generator: inout some RandomNumberGenerator) -> UInt64 {
        switch state {
        case .uniform:
            return generator.uniform(below: keyspace)
        case .zipfian(let zipfian):
            return zipfian.next(using: &generator)
        case .sequential(let next):
            state = .sequential(next: next + 1 == keyspace ? 0 : next + 1)
            return next
        }
    }
}
