/// The workload (`--workload`): which operations are issued, in what proportions.
public enum WorkloadKind: String, Sendable, CaseIterable {
    /// Writes only (`set`).
    case write
    /// Reads only (`get`).
    case read
    /// Reads with probability `--read-ratio`, writes otherwise.
    case mixed
    /// YCSB workload A, update heavy: 50% reads, 50% updates.
    case ycsbA = "ycsb-a"
    /// YCSB workload B, read mostly: 95% reads, 5% updates.
    case ycsbB = "ycsb-b"
    /// YCSB workload C, read only.
    case ycsbC = "ycsb-c"
    /// YCSB workload F: 50% reads, 50% read-modify-writes (a read, then a compare-and-swap of what it read).
    case ycsbF = "ycsb-f"

    /// The distribution used when `--distribution` is not given: Zipfian for the YCSB workloads (as in YCSB's
    /// workload files), uniform otherwise.
    public var defaultDistribution: KeyDistribution {
        switch self {
        case .write, .read, .mixed: .uniform
        case .ycsbA, .ycsbB, .ycsbC, .ycsbF: .zipfian
        }
    }

    /// Whether the workload issues reads (so `--consistency` and `--target` matter).
    public var hasReads: Bool { self != .write }
}

/// The kind of one operation.
public enum OperationKind: String, Sendable, CaseIterable {
    /// A read of the key (map `get`, number `get`).
    case read
    /// A write of a new value (map `set`, number `set`).
    case write
    /// A YCSB update (map `set`, number `addAndGet(1)`).
    case update
    /// A read followed by a compare-and-swap from the value read to a new one; one operation, timed as a whole.
    case readModifyWrite = "read-modify-write"
}

/// The proportions of operation kinds of a workload. The fractions add up to 1.
public struct OperationMix: Sendable, Equatable {
    /// The fraction of reads.
    public var read: Double
    /// The fraction of writes.
    public var write: Double
    /// The fraction of updates.
    public var update: Double
    /// The fraction of read-modify-writes.
    public var readModifyWrite: Double

    /// The mix of `workload`; `readRatio` is used by ``WorkloadKind/mixed`` only.
    public init(workload: WorkloadKind, readRatio: Double) {
        switch workload {
        case .write: (read, write, update, readModifyWrite) = (0, 1, 0, 0)
        case .read, .ycsbC: (read, write, update, readModifyWrite) = (1, 0, 0, 0)
        case .mixed: (read, write, update, readModifyWrite) = (readRatio, 1 - readRatio, 0, 0)
        case .ycsbA: (read, write, update, readModifyWrite) = (0.5, 0, 0.5, 0)
        case .ycsbB: (read, write, update, readModifyWrite) = (0.95, 0, 0.05, 0)
        case .ycsbF: (read, write, update, readModifyWrite) = (0.5, 0, 0, 0.5)
        }
    }

    /// The kind for a uniform draw `u` in `[0, 1)`.
    public func kind(for u: Double) -> OperationKind {
        if u < read { return .read }
        if u < read + write { return .write }
        if u < read + write + update { return .update }
        if readModifyWrite > 0 { return .readModifyWrite }
        // Rounding left a sliver above the sum: give it to the last kind with a share.
        if update > 0 { return .update }
        return write > 0 ? .write : .read
    }
}

/// Turns key indexes into keys of exactly `size` bytes: `k` followed by the zero-padded decimal index
/// (`k000000000000042` for 16 bytes).
public struct KeyFormat: Sendable, Equatable {
    /// The length of every key, in bytes (ASCII).
    public let size: Int

    /// The smallest key size that can number `keyspace` keys: `k` and the digits of `keyspace - 1`.
    public static func minimumSize(keyspace: UInt64) -> Int {
        1 + String(keyspace > 0 ? keyspace - 1 : 0).utf8.count
    }

    /// Creates a format of `size`-byte keys (at least 2).
    public init(size: Int) {
        precondition(size >= 2, "keys need at least two bytes")
        self.size = size
    }

    /// The key of `index` (whose decimal form must fit in `size - 1` digits).
    public func key(_ index: UInt64) -> String {
        // Written in place: one allocation per key, where concatenating the parts took four.
        String(unsafeUninitializedCapacity: size) { bytes in
            bytes[0] = UInt8(ascii: "k")
            var rest = index
            for position in stride(from: size - 1, to: 0, by: -1) {
                bytes[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            precondition(rest == 0, "key index \(index) does not fit in \(size) bytes")
            return size
        }
    }
}

/// Makes values of exactly `size` bytes of lowercase ASCII letters. Each value starts with a stamp that is
/// unique per (stream, version), so consecutive writes of one stream differ, which read-modify-writes need.
public struct ValueFactory: Sendable, Equatable {
    /// The length of every value, in bytes.
    public let size: Int
    /// The filler bytes every value starts from.
    let template: [UInt8]
    /// The stream number in every stamp.
    let stream: UInt64
    /// The number of values made so far.
    var version: UInt64 = 0

    /// Creates a factory whose filler bytes come from `generator` and whose stamps carry `stream`.
    public init(size: Int, stream: UInt64, using generator: inout some RandomNumberGenerator) {
        precondition(size >= 0, "a value size cannot be negative")
        self.size = size
        self.stream = stream
        self.template = (0..<size).map { _ in UInt8(ascii: "a") + UInt8(generator.uniform(below: 26)) }
    }

    /// The next value: the template with its first bytes (up to 26) replaced by the stream and version in base 26.
    public mutating func next() -> [UInt8] {
        version &+= 1
        var value = template
        var stamp = (stream << 40) ^ version
        var position = 0
        while position < min(size, 26) {
            value[position] = UInt8(ascii: "a") + UInt8(stamp % 26)
            stamp /= 26
            position += 1
            if stamp == 0 { break }
        }
        return value
    }
}

/// One operation to issue.
public struct Operation: Sendable, Equatable {
    /// What to do.
    public var kind: OperationKind
    /// The key's index in the keyspace.
    public var keyIndex: UInt64
    /// The key.
    public var key: String
    /// The value to write (empty for reads).
    public var value: [UInt8]

    /// Creates an operation.
    public init(kind: OperationKind, keyIndex: UInt64, key: String, value: [UInt8]) {
        self.kind = kind
        self.keyIndex = keyIndex
        self.key = key
        self.value = value
    }
}

/// The operations of one client lane: a pure, seeded sequence (kind by the workload's mix, key by the
/// distribution, value from a ``ValueFactory``).
public struct WorkloadGenerator: Sendable {
    /// The proportions of operation kinds.
    public let mix: OperationMix
    /// The key format.
    public let keys: KeyFormat
    /// Chooses the keys.
    var chooser: KeyChooser
    /// Makes the values.
    var values: ValueFactory
    /// The lane's random stream.
    var random: SplitMix64

    /// Creates the generator of lane `stream` of a run seeded with `seed`.
    public init(
        mix: OperationMix, distribution: KeyDistribution, keyspace: UInt64, keys: KeyFormat, valueSize: Int,
        seed: UInt64, stream: UInt64, sequentialStart: UInt64 = 0
    ) {
        self.mix = mix
        self.keys = keys
        var random = SplitMix64(seed: SplitMix64.derive(seed: seed, stream: stream))
        self.values = ValueFactory(size: valueSize, stream: stream, using: &random)
        self.chooser = KeyChooser(distribution: distribution, keyspace: keyspace, start: sequentialStart)
        self.random = random
    }

    /// The next operation.
    public mutating func next() -> Operation {
        let kind = mix.kind(for: random.unitInterval())
        let index = chooser.next(using: &random)
        let value: [UInt8] = kind == .read ? [] : values.next()
        return Operation(kind: kind, keyIndex: index, key: keys.key(index), value: value)
    }
}
