import BifrostStorage
import Foundation
import Testing

/// Deterministic, semi-compressible test payload.
func snapshotTestBytes(seed: UInt64, offset: UInt64, count: Int) -> [UInt8] {
    (0..<count).map { position in
        let value = offset + UInt64(position)
        return UInt8(truncatingIfNeeded: (value / 3) &* (seed | 1) ^ (value >> 11))
    }
}

func readAll(_ reader: SnapshotReader, chunk: Int = 4096) throws -> [UInt8] {
    var payload: [UInt8] = []
    while let bytes = try reader.readChunk(maxBytes: chunk) {
        #expect(bytes.count <= chunk)
        payload += bytes
    }
    return payload
}

func snapshotFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".bfsnap") }.sorted()
}

@Suite("SnapshotStore")
struct SnapshotStoreTests {
    let metadata = SnapshotMetadata(groupID: 4, index: 100, term: 7, configuration: Array("members: 1,2,3".utf8))

    @Test("save and openLatest round-trip metadata and payload")
    func roundTrip() throws {
        try withTemporaryDirectory { directory in
            let store = try SnapshotStore(directory: directory + "/snaps")
            #expect(try store.openLatest(groupID: 4) == nil)
            #expect(try store.latestMetadata(groupID: 4) == nil)
            let payload = snapshotTestBytes(seed: 1, offset: 0, count: 300_000)
            try store.save(self.metadata, payload: payload)
            let reader = try #require(try store.openLatest(groupID: 4))
            #expect(reader.metadata == self.metadata)
            #expect(reader.payloadLength == 300_000)
            #expect(reader.fileSize < 300_000)  // it was compressed
            #expect(try readAll(reader, chunk: 65_536) == payload)
            #expect(try reader.readChunk(maxBytes: 10) == nil)
            // Other groups are unaffected; an empty payload works.
            #expect(try store.openLatest(groupID: 5) == nil)
            let empty = SnapshotMetadata(groupID: 5, index: 1, term: 1, configuration: [])
            try store.save(empty, payload: [])
            let emptyReader = try #require(try store.openLatest(groupID: 5))
            #expect(try emptyReader.readChunk(maxBytes: 100) == nil)
            #expect(emptyReader.metadata == empty)
        }
    }

    @Test("the latest snapshots are kept, older ones pruned, stale ones rejected")
    func retention() throws {
        try withTemporaryDirectory { directory in
            var options = SnapshotStore.Options()
            options.retainCount = 2
            let store = try SnapshotStore(directory: directory, options: options)
            for index: UInt64 in [10, 20, 30] {
                var meta = self.metadata
                meta.index = index
                try store.save(meta, payload: [UInt8(index)])
            }
            #expect(try store.snapshotIndexes(groupID: 4) == [20, 30])
            #expect(try store.latestMetadata(groupID: 4)?.index == 30)
            var stale = self.metadata
            stale.index = 25
            expectStorageError(.invalidArgument) { try store.save(stale, payload: [1]) }
            #expect(try store.snapshotIndexes(groupID: 4) == [20, 30])
            // Also when the newer snapshot appears while the older one is being written.
            var racing = self.metadata
            racing.index = 40
            let slow = try store.beginSnapshot(racing)
            try slow.write([1])
            var newest = self.metadata
            newest.index = 50
            try store.save(newest, payload: [2])
            expectStorageError(.invalidArgument) { try slow.finish() }
            #expect(try store.snapshotIndexes(groupID: 4) == [30, 50])
            // The same index again replaces the file atomically.
            var same = self.metadata
            same.index = 50
            same.term = 8
            try store.save(same, payload: [9, 9])
            let reader = try #require(try store.openLatest(groupID: 4))
            #expect(reader.metadata.term == 8)
            #expect(try readAll(reader) == [9, 9])
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("tmp-") } == [])
        }
    }

    @Test("an aborted or dropped writer leaves the previous snapshot as the latest and no temp file")
    func abortKeepsPrevious() throws {
        try withTemporaryDirectory { directory in
            let store = try SnapshotStore(directory: directory)
            try store.save(self.metadata, payload: [1, 2, 3])
            var newer = self.metadata
            newer.index = 200
            let writer = try store.beginSnapshot(newer)
            try writer.write([4, 5, 6])
            writer.abort()
            expectStorageError(.invalidArgument) { try writer.write([7]) }
            do {
                let dropped = try store.beginSnapshot(newer)
                try dropped.write([4, 5, 6])
            }
            #expect(try store.latestMetadata(groupID: 4)?.index == 100)
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("tmp-") } == [])
        }
    }

    @Test("stale temporary files are removed on open and a second store on the directory is refused")
    func tempCleanupAndLock() throws {
        try withTemporaryDirectory { directory in
            do {
                let store = try SnapshotStore(directory: directory)
                try store.save(self.metadata, payload: [1])
                expectStorageError(.busy) { _ = try SnapshotStore(directory: directory) }
                store.close()
                expectStorageError(.closed) { _ = try store.snapshotIndexes(groupID: 4) }
            }
            let temp = directory + "/tmp-0000000000000004-1-1.bfsnap"
            #expect(FileManager.default.createFile(atPath: temp, contents: Data([1, 2, 3])))
            let store = try SnapshotStore(directory: directory)
            #expect(!FileManager.default.fileExists(atPath: temp))
            #expect(try store.verifyLatest(groupID: 4)?.index == 100)
            // A path that is a regular file cannot be a snapshot directory.
            let file = directory + "/plain-file"
            #expect(FileManager.default.createFile(atPath: file, contents: Data([1])))
            expectStorageError(.io) { _ = try SnapshotStore(directory: file) }
        }
    }

    @Test("every flipped byte of a snapshot file is detected as corruption")
    func flippedBytes() throws {
        try withTemporaryDirectory { directory in
            let store = try SnapshotStore(directory: directory)
            try store.save(self.metadata, payload: snapshotTestBytes(seed: 3, offset: 0, count: 3_000))
            let name = try #require(try snapshotFiles(directory).first)
            let path = directory + "/" + name
            let original = try #require(FileManager.default.contents(atPath: path))
            #expect(try store.verifyLatest(groupID: 4) == self.metadata)
            for position in 0..<original.count {
                var damaged = original
                damaged[position] ^= 0x04
                try damaged.write(to: URL(fileURLWithPath: path))
                expectStorageError(.corruption) { try store.verifyLatest(groupID: 4) }
            }
            try original.write(to: URL(fileURLWithPath: path))
            #expect(try store.verifyLatest(groupID: 4) == self.metadata)
        }
    }

    @Test("truncated files, bad magic and garbage are detected as corruption")
    func truncationAndGarbage() throws {
        try withTemporaryDirectory { directory in
            let store = try SnapshotStore(directory: directory)
            try store.save(self.metadata, payload: snapshotTestBytes(seed: 5, offset: 0, count: 200_000))
            let name = try #require(try snapshotFiles(directory).first)
            let path = directory + "/" + name
            let original = try #require(FileManager.default.contents(atPath: path))
            for length in [0, 7, 40, 60, original.count / 2, original.count - 33, original.count - 1] {
                try original.prefix(length).write(to: URL(fileURLWithPath: path))
                expectStorageError(.corruption) { try store.verifyLatest(groupID: 4) }
            }
            // Extra bytes appended after the footer.
            try (original + Data([0])).write(to: URL(fileURLWithPath: path))
            expectStorageError(.corruption) { try store.verifyLatest(groupID: 4) }
            var badMagic = original
            badMagic[0] = UInt8(ascii: "X")
            try badMagic.write(to: URL(fileURLWithPath: path))
            expectStorageError(.corruption) { _ = try store.openLatest(groupID: 4) }
            try Data(repeating: 0xAB, count: 5_000).write(to: URL(fileURLWithPath: path))
            expectStorageError(.corruption) { _ = try store.openLatest(groupID: 4) }
        }
    }

    @Test("a 64 MiB payload streams through in 1 MiB chunks")
    func largeStreamingSnapshot() throws {
        try withTemporaryDirectory { directory in
            let store = try SnapshotStore(directory: directory)
            let chunkSize = 1 << 20
            let chunkCount = 64
            // One base chunk, varied per chunk number, so that no 64 MiB buffer ever exists.
            let base = snapshotTestBytes(seed: 11, offset: 0, count: chunkSize)
            func chunk(_ number: Int) -> [UInt8] {
                var bytes = base
                for position in stride(from: 0, to: chunkSize, by: 4096) {
                    bytes[position] = UInt8(truncatingIfNeeded: number &* 37 &+ position >> 12)
                }
                return bytes
            }
            let writer = try store.beginSnapshot(self.metadata)
            for number in 0..<chunkCount {
                try writer.write(chunk(number))
            }
            #expect(writer.bytesWritten == UInt64(chunkSize * chunkCount))
            try writer.finish()
            let reader = try #require(try store.openLatest(groupID: 4))
            #expect(reader.payloadLength == UInt64(chunkSize * chunkCount))
            for number in 0..<chunkCount {
                let bytes = try #require(try reader.readChunk(maxBytes: chunkSize))
                #expect(bytes.count == chunkSize)
                if bytes != chunk(number) {
                    Issue.record("chunk \(number) differs")
                    break
                }
            }
            #expect(try reader.readChunk(maxBytes: chunkSize) == nil)
        }
    }

    @Test("raw chunks ship a snapshot to another store, which installs it after validating")
    func rawShipAndInstall() throws {
        try withTemporaryDirectory { directory in
            let leader = try SnapshotStore(directory: directory + "/leader")
            let follower = try SnapshotStore(directory: directory + "/follower")
            let payload = snapshotTestBytes(seed: 8, offset: 0, count: 700_000)
            try leader.save(self.metadata, payload: payload)
            let source = try #require(try leader.openLatestRaw(groupID: 4))
            #expect(source.metadata == self.metadata)
            let receiver = try follower.beginReceiving(groupID: 4)
            var offset: UInt64 = 0
            while true {
                let chunk = try source.readRawChunk(offset: offset, maxBytes: 64 << 10)
                if chunk.isEmpty { break }
                try receiver.receive(rawChunk: chunk, at: offset)
                // A retransmitted chunk is ignored.
                try receiver.receive(rawChunk: chunk, at: offset)
                offset += UInt64(chunk.count)
            }
            #expect(offset == source.size)
            // Nothing is visible before finish.
            #expect(try follower.latestMetadata(groupID: 4) == nil)
            #expect(try receiver.finish() == self.metadata)
            let reader = try #require(try follower.openLatest(groupID: 4))
            #expect(try readAll(reader, chunk: 100_000) == payload)
            let names = try snapshotFiles(directory + "/leader")
            #expect(try snapshotFiles(directory + "/follower") == names)
            let name = try #require(names.first)
            let leaderFile = FileManager.default.contents(atPath: directory + "/leader/" + name)
            let followerFile = FileManager.default.contents(atPath: directory + "/follower/" + name)
            #expect(leaderFile != nil && leaderFile == followerFile)
        }
    }

    @Test("a corrupted, truncated or gapped transfer is rejected and the previous snapshot stays latest")
    func rawTransferRejected() throws {
        try withTemporaryDirectory { directory in
            let leader = try SnapshotStore(directory: directory + "/leader")
            let follower = try SnapshotStore(directory: directory + "/follower")
            var older = self.metadata
            older.index = 50
            try follower.save(older, payload: [5, 5, 5])
            try leader.save(self.metadata, payload: snapshotTestBytes(seed: 9, offset: 0, count: 500_000))
            let source = try #require(try leader.openLatestRaw(groupID: 4))
            let whole = try source.readRawChunk(offset: 0, maxBytes: Int(source.size))
            #expect(whole.count == Int(source.size))

            for damage in ["flip", "truncate", "wrong group"] {
                let receiver = try follower.beginReceiving(groupID: damage == "wrong group" ? 5 : 4)
                var bytes = whole
                switch damage {
                case "flip": bytes[bytes.count / 2] ^= 0x20
                case "truncate": bytes.removeLast(100)
                default: break
                }
                try receiver.receive(rawChunk: bytes, at: 0)
                expectStorageError(.corruption) { try receiver.finish() }
                #expect(try follower.latestMetadata(groupID: 4) == older)
            }
            let gapped = try follower.beginReceiving(groupID: 4)
            try gapped.receive(rawChunk: Array(whole[0..<100]), at: 0)
            expectStorageError(.invalidArgument) { try gapped.receive(rawChunk: Array(whole[200..<300]), at: 200) }
            gapped.abort()
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: directory + "/follower").filter {
                    $0.hasPrefix("tmp-")
                } == [])
            #expect(try follower.verifyLatest(groupID: 4) == older)
        }
    }
}
