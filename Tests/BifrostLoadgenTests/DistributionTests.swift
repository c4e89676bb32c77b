import BifrostLoadgenKit
import Foundation
import Testing

@Suite("Key distributions")
struct DistributionTests {
    @Test("SplitMix64 is reproducible and streams differ")
    func splitMix() {
        var a = SplitMix64(seed: 42)
        var b = SplitMix64(seed: 42)
        let first = (0..<5).map { _ in a.next() }
        #expect(first == (0..<5).map { _ in b.next() })
        // The reference sequence of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        var zero = SplitMix64(seed: 0)
        #expect(zero.next() == 0xE220_A839_7B1D_CDAF)
        #expect(SplitMix64.derive(seed: 1, stream: 0) != SplitMix64.derive(seed: 1, stream: 1))
        var bounded = SplitMix64(seed: 7)
        let small = (0..<10_000).map { _ in bounded.uniform(below: 3) }
        #expect(Set(small) == [0, 1, 2])
        let units = (0..<10_000).map { _ in bounded.unitInterval() }
        #expect(units.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    @Test("uniform covers the whole keyspace, evenly")
    func uniformCoversKeyspace() {
        let keyspace: UInt64 = 1000
        var chooser = KeyChooser(distribution: .uniform, keyspace: keyspace)
        var random = SplitMix64(seed: 1)
        var counts = [Int](repeating: 0, count: Int(keyspace))
        let draws = 100_000
        var outOfRange = 0
        for _ in 0..<draws {
            let key = chooser.next(using: &random)
            if key < keyspace { counts[Int(key)] += 1 } else { outOfRange += 1 }
        }
        #expect(outOfRange == 0)
        #expect(counts.allSatisfy { $0 > 0 })
        // 100 expected per key; with a fixed seed the extremes are fixed too, and far from skewed.
        let most = counts.max() ?? 0
        let least = counts.min() ?? 0
        #expect(most < 160)
        #expect(least > 50)
    }

    @Test("sequential counts up from its start and wraps at the end of the keyspace")
    func sequentialWraps() {
        var random = SplitMix64(seed: 1)
        var chooser = KeyChooser(distribution: .sequential, keyspace: 5, start: 3)
        #expect((0..<12).map { _ in chooser.next(using: &random) } == [3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
        var fromZero = KeyChooser(distribution: .sequential, keyspace: 3)
        #expect((0..<4).map { _ in fromZero.next(using: &random) } == [0, 1, 2, 0])
        // A start beyond the keyspace is taken modulo it.
        var large = KeyChooser(distribution: .sequential, keyspace: 4, start: 9)
        #expect(large.next(using: &random) == 1)
        // A keyspace of one key always gives it.
        var single = KeyChooser(distribution: .sequential, keyspace: 1)
        #expect((0..<3).map { _ in single.next(using: &random) } == [0, 0, 0])
    }

    @Test("zeta and YCSB's FNV hash match reference values")
    func referenceValues() {
        #expect(abs(ZipfianGenerator.zeta(1000, theta: 0.99) - 7.728953217284729) < 1e-9)
        #expect(abs(ZipfianGenerator.zeta(2, theta: 0.99) - (1 + 1 / pow(2, 0.99))) < 1e-12)
        // Computed independently (Python) from YCSB's Utils.fnvhash64.
        #expect(ScrambledZipfianGenerator.fnvHash64(0) == 6_284_781_860_667_377_211)
        #expect(ScrambledZipfianGenerator.fnvHash64(1) == 8_517_097_267_634_966_620)
        #expect(ScrambledZipfianGenerator.fnvHash64(12345) == 1_792_800_413_050_876_852)
    }

    @Test("Zipfian over 1,000 items: items 0 and 1 get exactly their theoretical mass")
    func zipfianHeadMass() {
        let zipfian = ZipfianGenerator(items: 1000, theta: 0.99)
        var random = SplitMix64(seed: 2024)
        var counts = [Int](repeating: 0, count: 1000)
        let draws = 200_000
        var outOfRange = 0
        for _ in 0..<draws {
            let item = zipfian.next(using: &random)
            if item < 1000 { counts[Int(item)] += 1 } else { outOfRange += 1 }
        }
        #expect(outOfRange == 0)
        let p0 = 1 / zipfian.zetan  // 0.1294
        let p1 = pow(2, -0.99) / zipfian.zetan  // 0.0651
        // Standard deviations of the shares are 0.00075 and 0.00055; the tolerance is about 7 of them.
        #expect(abs(Double(counts[0]) / Double(draws) - p0) < 0.005)
        #expect(abs(Double(counts[1]) / Double(draws) - p1) < 0.004)
        // Popularity falls with the rank.
        #expect(counts[0] > counts[1])
        #expect(counts[1] > counts[10])
        #expect(counts[10] > counts[500])
    }

    @Test("scrambled Zipfian is skewed: the hottest key holds YCSB's head mass, 1/zeta(10^10), far above uniform")
    func scrambledZipfianIsSkewed() {
        let keyspace: UInt64 = 10_000
        var chooser = KeyChooser(distribution: .zipfian, keyspace: keyspace)
        var random = SplitMix64(seed: 99)
        var counts = [Int](repeating: 0, count: Int(keyspace))
        let draws = 200_000
        var outOfRange = 0
        for _ in 0..<draws {
            let key = chooser.next(using: &random)
            if key < keyspace { counts[Int(key)] += 1 } else { outOfRange += 1 }
        }
        #expect(outOfRange == 0)
        let hottest = counts.indices.max { counts[$0] < counts[$1] } ?? -1
        // Item 0 of the Zipfian draw lands on key fnvhash64(0) % keyspace (7211).
        #expect(hottest == Int(ScrambledZipfianGenerator.fnvHash64(0) % keyspace))
        let share = Double(counts[hottest]) / Double(draws)
        let headMass = 1 / ScrambledZipfianGenerator.zetan  // 0.0378
        // The other items add about (1 - headMass) / keyspace = 0.0001 on average; the share's standard
        // deviation is 0.0004.
        #expect(abs(share - headMass) < 0.003)
        #expect(share > 100 / Double(keyspace))
        // The hot keys are scattered, not the lowest ones.
        let second = counts.indices.filter { $0 != hottest }.max { counts[$0] < counts[$1] } ?? -1
        #expect(second == Int(ScrambledZipfianGenerator.fnvHash64(1) % keyspace))
        // Most keys are still drawn at least once.
        #expect(counts.filter { $0 > 0 }.count > Int(keyspace) / 2)
    }

    @Test("the same seed gives the same keys; another seed gives others")
    func seeded() {
        func keys(_ distribution: KeyDistribution, seed: UInt64) -> [UInt64] {
            var chooser = KeyChooser(distribution: distribution, keyspace: 1_000_000)
            var random = SplitMix64(seed: seed)
            return (0..<50).map { _ in chooser.next(using: &random) }
        }
        for distribution in [KeyDistribution.uniform, .zipfian] {
            #expect(keys(distribution, seed: 5) == keys(distribution, seed: 5))
            #expect(keys(distribution, seed: 5) != keys(distribution, seed: 6))
        }
    }
}
