// Storage benchmarks: Raft log appends (100-byte payloads, sync on/off, batch 1/64/1024), the disk's raw fsync
// rate as the ceiling for synced appends, and snapshot compress (save) / decompress (read) throughput.
//
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --target Storage
// Results and their interpretation are recorded in docs/benchmarks.md (## Storage).

import Benchmark
import BifrostStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

let entriesPerSecond = BenchmarkMetric.custom("entries/s", polarity: .prefersLarger, useScalingFactor: false)
let payloadKBPerSecond = BenchmarkMetric.custom("payload kB/s", polarity: .prefersLarger, useScalingFactor: false)
let fsyncsPerSecond = BenchmarkMetric.custom("syncs/s", polarity: .prefersLarger, useScalingFactor: false)
let appendSyncsPerSecond = BenchmarkMetric.custom(
    "sync appends/s", polarity: .prefersLarger, useScalingFactor: false)
let rawSyncsPerSecond = BenchmarkMetric.custom("raw fdatasyncs/s", polarity: .prefersLarger, useScalingFactor: false)
let megabytesPerSecond = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)

let payloadSize = 100
let snapshotSize = 64 << 20
let snapshotChunk = 1 << 20

struct BenchmarkFailure: Error, CustomStringConvertible {
    var description: String
}

func makeTemporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/bifrost-bench-XXXXXX").utf8CString)
    return try template.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress, let created = mkdtemp(base) else {
            throw BenchmarkFailure(description: "mkdtemp failed")
        }
        return String(cString: created)
    }
}

func seconds(_ duration: Duration) -> Double {
    let (whole, attoseconds) = duration.components
    return Double(whole) + Double(attoseconds) / 1e18
}

/// A log database in a temporary directory, appending to group 1.
final class AppendFixture {
    let directory: String
    let database: RaftLogDatabase
    let store: RaftLogStore
    var nextIndex: UInt64 = 1
    let payload = [UInt8](repeating: 0x5A, count: payloadSize)

    init() throws {
        self.directory = try makeTemporaryDirectory()
        self.database = try RaftLogDatabase(path: self.directory + "/log")
        self.store = try self.database.store(forGroup: 1)
    }

    func appendBatch(size: Int, sync: Bool) throws {
        let first = self.nextIndex
        var entries: [LogEntry] = []
        entries.reserveCapacity(size)
        for index in first..<(first + UInt64(size)) {
            entries.append(LogEntry(index: index, term: 1, payload: self.payload))
        }
        try self.store.append(entries, sync: sync)
        self.nextIndex += UInt64(size)
    }

    func close() {
        self.database.close()
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// A file for measuring the raw sync rate of the disk under the temporary directory.
///
/// Two variants: appending 4 KiB blocks and calling `fsync` (the file grows, so every sync also commits file-system
/// metadata), and overwriting 4 KiB blocks of a preallocated 4 MiB file and calling `fdatasync` (no metadata; what
/// RocksDB's WAL sync mostly costs, since it preallocates WAL space and syncs with `fdatasync`).
final class SyncFixture {
    let directory: String
    let fd: Int32
    let overwrite: Bool
    let block = [UInt8](repeating: 0xA5, count: 4096)
    var offset: off_t = 0
    static let overwriteSpan: off_t = 4 << 20

    init(overwrite: Bool) throws {
        self.overwrite = overwrite
        self.directory = try makeTemporaryDirectory()
        self.fd = open(self.directory + "/sync-probe", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard self.fd >= 0 else { throw BenchmarkFailure(description: "open failed: \(errno)") }
        if overwrite {
            let zeros = [UInt8](repeating: 0, count: Int(Self.overwriteSpan))
            let written = zeros.withUnsafeBytes { write(self.fd, $0.baseAddress, $0.count) }
            guard written == zeros.count, fsync(self.fd) == 0 else {
                throw BenchmarkFailure(description: "preallocation failed: \(errno)")
            }
        }
    }

    func writeAndSync() throws {
        let written = self.block.withUnsafeBytes { pwrite(self.fd, $0.baseAddress, $0.count, self.offset) }
        let synced = self.overwrite ? fdatasync(self.fd) : fsync(self.fd)
        guard written == self.block.count, synced == 0 else {
            throw BenchmarkFailure(description: "write/sync failed: \(errno)")
        }
        self.offset += 4096
        if self.overwrite { self.offset %= Self.overwriteSpan }
    }

    func close() {
        _ = Glibc.close(self.fd)
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// 64 MiB of semi-compressible data (LZ4 ratio about 2): random picks from a dictionary of random "words" mixed
/// with random bytes.
func makeSnapshotData() -> [UInt8] {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    let words: [[UInt8]] = (0..<1024).map { _ in
        (0..<(8 + Int(next() % 24))).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
    var data: [UInt8] = []
    data.reserveCapacity(snapshotSize + 64)
    while data.count < snapshotSize {
        // Three tokens in four repeat a dictionary word (about 20 KiB of words, within LZ4's 64 KiB window);
        // one in four is 16 fresh random bytes.
        let pick = next()
        if pick % 4 == 0 {
            for _ in 0..<16 { data.append(UInt8(truncatingIfNeeded: next())) }
        } else {
            data.append(contentsOf: words[Int((pick >> 2) % UInt64(words.count))])
        }
    }
    data.removeLast(data.count - snapshotSize)
    return data
}

/// A snapshot store in a temporary directory that keeps one snapshot.
final class SnapshotFixture {
    let directory: String
    let store: SnapshotStore
    let data: [UInt8]
    var index: UInt64 = 0

    init() throws {
        self.directory = try makeTemporaryDirectory()
        var options = SnapshotStore.Options()
        options.retainCount = 1
        self.store = try SnapshotStore(directory: self.directory, options: options)
        self.data = makeSnapshotData()
    }

    func save() throws {
        self.index += 1
        let writer = try self.store.beginSnapshot(
            SnapshotMetadata(groupID: 1, index: self.index, term: 1, configuration: [1, 2, 3]))
        try self.data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + snapshotChunk, bytes.count)
                try writer.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                offset = end
            }
        }
        try writer.finish()
    }

    func read() throws -> Int {
        guard let reader = try self.store.openLatest(groupID: 1) else {
            throw BenchmarkFailure(description: "no snapshot to read")
        }
        var total = 0
        while let chunk = try reader.readChunk(maxBytes: snapshotChunk) {
            total += chunk.count
        }
        guard total == snapshotSize else { throw BenchmarkFailure(description: "read \(total) bytes") }
        return total
    }

    func close() {
        self.store.close()
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// Holds a fixture between the setup hook, the measured closure and the teardown hook, and accumulates the
/// aggregate rate (total operations / total measured time), which the per-iteration percentiles do not show when
/// latencies are bimodal (as synced writes on a VM disk are).
final class Box<Value> {
    var value: Value?
    var operations = 0.0
    var bytes = 0.0
    var elapsed = 0.0

    func record(operations: Double, bytes: Double = 0, elapsed: Double) {
        self.operations += operations
        self.bytes += bytes
        self.elapsed += elapsed
    }

    func printAggregate(_ name: String, unit: String) {
        guard self.elapsed > 0 else { return }
        let rate = Int(self.operations / self.elapsed)
        let megabytes = self.bytes > 0 ? String(format: ", %.1f MB/s", self.bytes / self.elapsed / 1e6) : ""
        print(
            "aggregate: \(name): \(Int(self.operations)) \(unit) in \(String(format: "%.2f", self.elapsed)) s = \(rate) \(unit)/s\(megabytes)"
        )
        self.operations = 0
        self.bytes = 0
        self.elapsed = 0
    }
}

let benchmarks: @Sendable () -> Void = {
    // MARK: Log appends

    for sync in [true, false] {
        for batch in [1, 64, 1024] {
            let box = Box<AppendFixture>()
            let name = "Append \(sync ? "sync" : "nosync") batch=\(batch) (100 B payloads)"
            // Bound the run time: synced batch-1 appends are limited by fsync latency.
            let maxIterations = sync ? (batch == 1 ? 2_000 : 1_000) : (batch == 1 ? 100_000 : 2_000)
            Benchmark(
                name,
                configuration: .init(
                    metrics: [.wallClock, .throughput, entriesPerSecond, payloadKBPerSecond], warmupIterations: 5,
                    scalingFactor: .one, maxDuration: .seconds(4), maxIterations: maxIterations)
            ) { benchmark throws in
                guard let fixture = box.value else { throw BenchmarkFailure(description: "no fixture") }
                let start = ContinuousClock.now
                for _ in benchmark.scaledIterations {
                    try fixture.appendBatch(size: batch, sync: sync)
                }
                let elapsed = seconds(start.duration(to: .now))
                let entries = Double(batch * benchmark.scaledIterations.count)
                box.record(operations: entries, bytes: entries * Double(payloadSize), elapsed: elapsed)
                benchmark.measurement(entriesPerSecond, Int(entries / elapsed))
                benchmark.measurement(payloadKBPerSecond, Int(entries * Double(payloadSize) / elapsed / 1e3))
            } setup: {
                box.value = try AppendFixture()
            } teardown: {
                box.printAggregate(name, unit: "entries")
                box.value?.close()
                box.value = nil
            }
        }
    }

    // MARK: Raw sync ceiling

    for overwrite in [false, true] {
        let box = Box<SyncFixture>()
        let name = overwrite ? "Raw fdatasync (4 KiB overwrite + fdatasync)" : "Raw fsync (4 KiB append + fsync)"
        Benchmark(
            name,
            configuration: .init(
                metrics: [.wallClock, .throughput, fsyncsPerSecond], warmupIterations: 5, scalingFactor: .one,
                maxDuration: .seconds(4), maxIterations: 2_000)
        ) { benchmark throws in
            guard let fixture = box.value else { throw BenchmarkFailure(description: "no fixture") }
            let start = ContinuousClock.now
            for _ in benchmark.scaledIterations {
                try fixture.writeAndSync()
            }
            let elapsed = seconds(start.duration(to: .now))
            box.record(operations: Double(benchmark.scaledIterations.count), elapsed: elapsed)
            benchmark.measurement(fsyncsPerSecond, Int(Double(benchmark.scaledIterations.count) / elapsed))
        } setup: {
            box.value = try SyncFixture(overwrite: overwrite)
        } teardown: {
            box.printAggregate(name, unit: "syncs")
            box.value?.close()
            box.value = nil
        }
    }

    // MARK: Synced append vs raw sync, interleaved

    // The VM disk's sync latency changes over time (it alternates between ~0.15 ms and ~4 ms phases), so rates
    // measured minutes apart do not compare. This benchmark alternates one synced batch-1 append with one raw
    // 4 KiB overwrite + fdatasync, so both see the same disk, and prints the aggregate ratio at the end.
    let ratioBox = Box<(AppendFixture, SyncFixture)>()
    var appendSeconds = 0.0
    var rawSeconds = 0.0
    var pairs = 0
    Benchmark(
        "Interleaved: sync append batch=1 vs raw fdatasync",
        configuration: .init(
            metrics: [.wallClock, appendSyncsPerSecond, rawSyncsPerSecond], warmupIterations: 5,
            scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 2_000)
    ) { benchmark throws in
        guard let (log, raw) = ratioBox.value else { throw BenchmarkFailure(description: "no fixture") }
        let start = ContinuousClock.now
        try log.appendBatch(size: 1, sync: true)
        let middle = ContinuousClock.now
        try raw.writeAndSync()
        let appendTime = seconds(start.duration(to: middle))
        let rawTime = seconds(middle.duration(to: .now))
        appendSeconds += appendTime
        rawSeconds += rawTime
        pairs += 1
        benchmark.measurement(appendSyncsPerSecond, Int(1 / appendTime))
        benchmark.measurement(rawSyncsPerSecond, Int(1 / rawTime))
    } setup: {
        ratioBox.value = (try AppendFixture(), try SyncFixture(overwrite: true))
    } teardown: {
        if pairs > 0 {
            let appends = Double(pairs) / appendSeconds
            let raws = Double(pairs) / rawSeconds
            print(
                "aggregate: interleaved: \(pairs) pairs: synced batch-1 appends \(Int(appends))/s, raw fdatasync "
                    + "\(Int(raws))/s, ratio \(String(format: "%.2f", appends / raws))")
        }
        ratioBox.value?.0.close()
        ratioBox.value?.1.close()
        ratioBox.value = nil
    }

    // MARK: Snapshots

    let snapshotBox = Box<SnapshotFixture>()
    Benchmark(
        "Snapshot save 64 MiB (LZ4 frame compress + write + fsync)",
        configuration: .init(
            metrics: [.wallClock, .throughput, megabytesPerSecond], warmupIterations: 1, scalingFactor: .one,
            maxDuration: .seconds(8), maxIterations: 15)
    ) { benchmark throws in
        guard let fixture = snapshotBox.value else { throw BenchmarkFailure(description: "no fixture") }
        let start = ContinuousClock.now
        try fixture.save()
        benchmark.measurement(megabytesPerSecond, Int(Double(snapshotSize) / 1e6 / seconds(start.duration(to: .now))))
    } setup: {
        snapshotBox.value = try SnapshotFixture()
    } teardown: {
        snapshotBox.value?.close()
        snapshotBox.value = nil
    }

    let readBox = Box<SnapshotFixture>()
    Benchmark(
        "Snapshot read 64 MiB (read + LZ4 frame decompress + verify)",
        configuration: .init(
            metrics: [.wallClock, .throughput, megabytesPerSecond], warmupIterations: 1, scalingFactor: .one,
            maxDuration: .seconds(8), maxIterations: 20)
    ) { benchmark throws in
        guard let fixture = readBox.value else { throw BenchmarkFailure(description: "no fixture") }
        let start = ContinuousClock.now
        blackHole(try fixture.read())
        benchmark.measurement(megabytesPerSecond, Int(Double(snapshotSize) / 1e6 / seconds(start.duration(to: .now))))
    } setup: {
        let fixture = try SnapshotFixture()
        try fixture.save()
        let compressed = try fixture.store.openLatestRaw(groupID: 1)?.size ?? 0
        print("snapshot: \(snapshotSize) bytes compress to \(compressed) bytes")
        readBox.value = fixture
    } teardown: {
        readBox.value?.close()
        readBox.value = nil
    }
}
