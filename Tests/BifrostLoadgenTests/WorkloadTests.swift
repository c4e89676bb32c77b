import BifrostLoadgenKit
import Testing

@Suite("Workloads")
struct WorkloadTests {
    /// The share of each operation kind over `draws` operations of `workload` with a fixed seed.
    func shares(
        _ workload: WorkloadKind, readRatio: Double = 0.5, draws: Int = 100_000
    ) -> [OperationKind: Double] {
        var generator = WorkloadGenerator(
            mix: OperationMix(workload: workload, readRatio: readRatio), distribution: .uniform, keyspace: 1000,
            keys: KeyFormat(size: 16), valueSize: 8, seed: 11, stream: 3)
        var counts: [OperationKind: Int] = [:]
        for _ in 0..<draws { counts[generator.next().kind, default: 0] += 1 }
        return counts.mapValues { Double($0) / Double(draws) }
    }

    @Test(
        "read/write ratios of every workload over 100,000 draws",
        arguments: [
            (WorkloadKind.write, [OperationKind.write: 1.0]),
            (.read, [.read: 1.0]),
            (.ycsbA, [.read: 0.5, .update: 0.5]),
            (.ycsbB, [.read: 0.95, .update: 0.05]),
            (.ycsbC, [.read: 1.0]),
            (.ycsbF, [.read: 0.5, .readModifyWrite: 0.5]),
        ])
    func ratios(workload: WorkloadKind, expected: [OperationKind: Double]) {
        let measured = shares(workload)
        #expect(Set(measured.keys) == Set(expected.keys), "\(workload): \(measured)")
        for (kind, share) in expected {
            // The standard deviation of a share is at most 0.0016 here.
            #expect(abs((measured[kind] ?? 0) - share) < 0.01, "\(workload) \(kind): \(measured[kind] ?? 0)")
        }
    }

    @Test("mixed follows --read-ratio", arguments: [0.0, 0.1, 0.75, 1.0])
    func mixed(readRatio: Double) {
        let measured = shares(.mixed, readRatio: readRatio)
        #expect(abs((measured[.read] ?? 0) - readRatio) < 0.01)
        #expect(abs((measured[.write] ?? 0) - (1 - readRatio)) < 0.01)
        #expect(measured[.update] == nil && measured[.readModifyWrite] == nil)
    }

    @Test("the mix maps draws to kinds at the boundaries")
    func mixBoundaries() {
        let b = OperationMix(workload: .ycsbB, readRatio: 0.5)
        #expect(b.kind(for: 0) == .read)
        #expect(b.kind(for: 0.9499) == .read)
        #expect(b.kind(for: 0.95) == .update)
        #expect(b.kind(for: 0.999_999) == .update)
        let f = OperationMix(workload: .ycsbF, readRatio: 0.5)
        #expect(f.kind(for: 0.5) == .readModifyWrite)
        let write = OperationMix(workload: .write, readRatio: 0.5)
        #expect(write.kind(for: 0) == .write)
    }

    @Test("keys and values have exactly the requested sizes", arguments: [(2, 0), (7, 1), (16, 100), (64, 4096)])
    func sizes(keySize: Int, valueSize: Int) {
        let keyspace: UInt64 = keySize == 2 ? 10 : 100_000
        var generator = WorkloadGenerator(
            mix: OperationMix(workload: .ycsbA, readRatio: 0.5), distribution: .uniform, keyspace: keyspace,
            keys: KeyFormat(size: keySize), valueSize: valueSize, seed: 1, stream: 0)
        for _ in 0..<500 {
            let operation = generator.next()
            #expect(operation.key.utf8.count == keySize)
            #expect(operation.key.hasPrefix("k"))
            #expect(UInt64(operation.key.dropFirst()) == operation.keyIndex)
            #expect(operation.value.count == (operation.kind == .read ? 0 : valueSize))
            #expect(operation.value.allSatisfy { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") })
        }
    }

    @Test("key format: zero-padded, with the smallest size that numbers a keyspace")
    func keyFormat() {
        #expect(KeyFormat(size: 16).key(42) == "k000000000000042")
        #expect(KeyFormat(size: 6).key(99_999) == "k99999")
        #expect(KeyFormat.minimumSize(keyspace: 100_000) == 6)
        #expect(KeyFormat.minimumSize(keyspace: 100_001) == 7)
        #expect(KeyFormat.minimumSize(keyspace: 1) == 2)
    }

    @Test("consecutive values of a stream differ, and streams differ from each other")
    func valuesDiffer() {
        var random = SplitMix64(seed: 3)
        var a = ValueFactory(size: 100, stream: 1, using: &random)
        var b = ValueFactory(size: 100, stream: 2, using: &random)
        var seen = Set<[UInt8]>()
        for _ in 0..<1000 {
            #expect(seen.insert(a.next()).inserted)
            #expect(seen.insert(b.next()).inserted)
        }
    }

    @Test("a workload generator is reproducible from its seed and stream")
    func reproducible() {
        func operations(seed: UInt64, stream: UInt64) -> [Operation] {
            var generator = WorkloadGenerator(
                mix: OperationMix(workload: .ycsbF, readRatio: 0.5), distribution: .zipfian, keyspace: 100_000,
                keys: KeyFormat(size: 16), valueSize: 32, seed: seed, stream: stream)
            return (0..<100).map { _ in generator.next() }
        }
        #expect(operations(seed: 1, stream: 0) == operations(seed: 1, stream: 0))
        #expect(operations(seed: 1, stream: 0) != operations(seed: 1, stream: 1))
        #expect(operations(seed: 1, stream: 0) != operations(seed: 2, stream: 0))
    }

    @Test("YCSB workloads default to Zipfian keys, the others to uniform")
    func defaultDistributions() {
        #expect(WorkloadKind.write.defaultDistribution == .uniform)
        #expect(WorkloadKind.mixed.defaultDistribution == .uniform)
        #expect(WorkloadKind.ycsbA.defaultDistribution == .zipfian)
        #expect(WorkloadKind.ycsbF.defaultDistribution == .zipfian)
    }
}
