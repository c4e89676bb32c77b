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
let fsyncsPerSecond = BenchmarkMetric.custom("fsyncs/s", polarity: .prefersLarger, useScalingFactor: false)
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

/// A file for measuring the raw fsync rate of the disk under the temporary directory.
final class FsyncFixture {
    let directory: String
    let fd: Int32
    let block = [UInt8](repeating: 0xA5, count: 4096)
    var offset: off_t = 0

    init() throws {
        self.directory = try makeTemporaryDirectory()
        self.fd = open(self.directory + "/fsync-probe", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard self.fd >= 0 else { throw BenchmarkFailure(description: "open failed: \(errno)") }
    }

    func writeAndSync() throws {
        let written = self.block.withUnsafeBytes { pwrite(self.fd, $0.baseAddress, $0.count, self.offset) }
        guard written == self.block.count, fsync(self.fd) == 0 else {
            throw BenchmarkFailure(description: "write/fsync failed: \(errno)")
        }
        // Append, like a log; wrap at 64 MiB to bound the file.
        self.offset = (self.offset + 4096) % (64 << 20)
    }

    func close() {
        _ = Glibc.close(self.fd)
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// 64 MiB of semi-compressible data: random picks from a dictionary of random "words", so LZ4 finds repeats but
/// the data is far from trivially compressible.
func makeSnapshotData() -> [UInt8] {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    let words: [[UInt8]] = (0..<4096).map { _ in
        (0..<(8 + Int(next() % 24))).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
    var data: [UInt8] = []
    data.reserveCapacity(snapshotSize + 64)
    while data.count < snapshotSize {
        data.append(contentsOf: words[Int(next() % UInt64(words.count))])
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

/// Holds a fixture between the setup hook, the measured closure and the teardown hook.
final class Box<Value> {
    var value: Value?
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
                benchmark.measurement(entriesPerSecond, Int(entries / elapsed))
                benchmark.measurement(payloadKBPerSecond, Int(entries * Double(payloadSize) / elapsed / 1e3))
            } setup: {
                box.value = try AppendFixture()
            } teardown: {
                box.value?.close()
                box.value = nil
            }
        }
    }

    // MARK: Raw fsync ceiling

    let fsyncBox = Box<FsyncFixture>()
    Benchmark(
        "Raw fsync (4 KiB pwrite + fsync)",
        configuration: .init(
            metrics: [.wallClock, .throughput, fsyncsPerSecond], warmupIterations: 5, scalingFactor: .one,
            maxDuration: .seconds(4), maxIterations: 2_000)
    ) { benchmark throws in
        guard let fixture = fsyncBox.value else { throw BenchmarkFailure(description: "no fixture") }
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations {
            try fixture.writeAndSync()
        }
        let elapsed = seconds(start.duration(to: .now))
        benchmark.measurement(fsyncsPerSecond, Int(Double(benchmark.scaledIterations.count) / elapsed))
    } setup: {
        fsyncBox.value = try FsyncFixture()
    } teardown: {
        fsyncBox.value?.close()
        fsyncBox.value = nil
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
