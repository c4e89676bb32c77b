import BifrostRaftCore
import BifrostStorage
import Foundation
import Testing

@testable import BifrostRaft

/// The node's log mirror (terms and the newest entries in memory, the rest read back from RocksDB and the snapshot
/// file) must answer every read exactly as a full in-memory copy of the same log would.
@Suite("Raft log mirror: a small cache in front of the log on disk")
struct RaftLogMirrorTests {
    /// A RocksDB log and a snapshot directory in a temporary directory, removed by ``close()``.
    final class Disk {
        let root: String
        let database: RaftLogDatabase
        let snapshots: SnapshotStore
        let disk: RaftDisk

        init() throws {
            root = NSTemporaryDirectory() + "/bifrost-mirror-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            database = try RaftLogDatabase(path: root + "/log")
            snapshots = try SnapshotStore(directory: root + "/snapshots")
            disk = try RaftDisk(group: 7, database: database, snapshots: snapshots, sync: false)
        }

        func close() {
            database.close()
            snapshots.close()
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    @Test("random appends, conflicting suffixes and snapshots: every read equals a full in-memory copy (20 seeds)")
    func matchesAFullCopy() throws {
        for seed in UInt64(1)...20 {
            let disk = try Disk()
            defer { disk.close() }
            var random = RaftRandom(seed: seed)
            let limit = Int(random.next(below: 600))
            var mirror = try disk.disk.load(cacheBytes: limit).storage
            var copy = MemoryRaftStorage(configuration: Configuration())
            var term: UInt64 = 1
            for step in 0..<120 {
                let context = "seed \(seed), step \(step), cache \(limit) bytes"
                if random.chance(1, in: 8), mirror.lastIndex > mirror.snapshotMetadata.index {
                    // A snapshot at an index in the log, saved, mirrored, then compacted on disk.
                    let span = mirror.lastIndex - mirror.snapshotMetadata.index
                    let index = mirror.snapshotMetadata.index + 1 + random.next(below: span)
                    let metadata = BifrostRaftCore.SnapshotMetadata(
                        index: index, term: try #require(mirror.term(at: index)), configuration: Configuration())
                    let payload = (0..<Int(random.next(below: 3000))).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                    let file = try #require(try disk.disk.saveSnapshot(metadata, payload: payload))
                    try mirror.createSnapshot(metadata, file: file)
                    try copy.createSnapshot(
                        metadata, data: try file.readRawChunk(offset: 0, maxBytes: Int(file.size)))
                    try disk.disk.compact(through: index, term: metadata.term)
                } else {
                    // Entries from anywhere after the snapshot up to the end (a conflicting suffix or an append).
                    let span = mirror.lastIndex + 1 - mirror.snapshotMetadata.index
                    let start = mirror.snapshotMetadata.index + 1 + random.next(below: span)
                    if random.chance(1, in: 3) { term += 1 }
                    let entries = (0..<(1 + random.next(below: 12))).map { offset in
                        Entry(
                            index: start + offset, term: term,
                            payload: Array(
                                repeating: UInt8(truncatingIfNeeded: start + offset),
                                count: Int(random.next(below: 150))))
                    }
                    _ = try disk.disk.persist([RaftDisk.Write(snapshot: nil, entries: entries, hardState: nil)])
                    mirror.append(entries)
                    copy.append(entries)
                }
                #expect(mirror.cachedPayloadBytes <= limit, "\(context)")
                try expectSame(mirror, copy, &random, context)
            }
            #expect(mirror.failure == nil, "seed \(seed): \(mirror.failure ?? "")")
        }
    }

    func expectSame(
        _ mirror: RaftLogMirror, _ copy: MemoryRaftStorage, _ random: inout RaftRandom, _ context: String
    ) throws {
        try #require(mirror.firstIndex == copy.firstIndex, "\(context)")
        try #require(mirror.lastIndex == copy.lastIndex, "\(context)")
        #expect(mirror.snapshotMetadata == copy.snapshotMetadata, "\(context)")
        for index in mirror.snapshotMetadata.index...(mirror.lastIndex + 1) {
            #expect(mirror.term(at: index) == copy.term(at: index), "\(context): term at \(index)")
        }
        for _ in 0..<4 {
            let lo = mirror.firstIndex + random.next(below: mirror.lastIndex + 2 - mirror.firstIndex)
            let hi = lo + random.next(below: 30)
            let maxBytes = Int(random.next(below: 2000))
            #expect(
                mirror.entries(from: lo, to: hi, maxBytes: maxBytes)
                    == copy.entries(from: lo, to: hi, maxBytes: maxBytes),
                "\(context): entries \(lo)..<\(hi) within \(maxBytes) bytes")
        }
        let offset = Int(random.next(below: 200))
        let chunk = mirror.snapshotChunk(offset: offset, maxBytes: 100)
        let expected = copy.snapshotChunk(offset: offset, maxBytes: 100)
        if copy.snapshotMetadata.index > 0 {
            #expect(
                chunk.data == expected.data && chunk.done == expected.done, "\(context): snapshot chunk at \(offset)")
        }
    }

    @Test("a restart reads the whole log for its terms and keeps only the newest entries in memory")
    func loadKeepsTheTail() throws {
        let disk = try Disk()
        defer { disk.close() }
        let entries = (1...200).map {
            Entry(index: UInt64($0), term: 1 + UInt64($0) / 50, payload: Array(repeating: 7, count: 100))
        }
        _ = try disk.disk.persist([
            RaftDisk.Write(
                snapshot: nil, entries: entries, hardState: BifrostRaftCore.HardState(term: 5, vote: 2, commit: 150))
        ])
        let loaded = try disk.disk.load(cacheBytes: 1000)
        let mirror = loaded.storage
        #expect(mirror.lastIndex == 200)
        #expect(mirror.hardState == BifrostRaftCore.HardState(term: 5, vote: 2, commit: 150))
        #expect(mirror.cachedPayloadBytes == 1000)
        #expect(mirror.cacheStart == 191)
        #expect(mirror.term(at: 49) == 1 && mirror.term(at: 150) == 4)
        #expect(mirror.entries(from: 1, to: 201, maxBytes: .max) == entries)
        #expect(mirror.failure == nil)
    }

    @Test("an entry that cannot be read back is recorded as a failure, not returned as data")
    func failedReadsAreRecorded() throws {
        let disk = try Disk()
        defer { disk.close() }
        let entries = (1...20).map { Entry(index: UInt64($0), term: 1, payload: Array(repeating: 1, count: 50)) }
        _ = try disk.disk.persist([RaftDisk.Write(snapshot: nil, entries: entries, hardState: nil)])
        let mirror = try disk.disk.load(cacheBytes: 100).storage
        // Delete entries the mirror still lists (the node never does this: it compacts after the mirror moved on).
        try disk.disk.compact(through: 10, term: 1)
        #expect(mirror.entries(from: 3, to: 8, maxBytes: .max).isEmpty)
        #expect(mirror.failure?.contains("3..<8") == true)
        #expect(mirror.entries(from: 19, to: 21, maxBytes: .max) == Array(entries[18...]))
    }
}
