import BifrostStorage
import Foundation
import Testing

@Suite("RocksDB wrapper")
struct RocksDBTests {
    @Test("put, get, delete and column families survive a reopen")
    func pointOperations() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/db"
            do {
                let db = try RocksDB(path: path, columnFamilies: ["a", "b"])
                let a = try db.columnFamily("a")
                let b = try db.columnFamily("b")
                try db.put([1], [10], in: a, sync: true)
                try db.put([1], [20], in: b, sync: false)
                try db.put([2], [30], in: a, sync: true)
                try db.delete([2], in: a, sync: true)
                #expect(try db.get([1], in: a) == [10])
                #expect(try db.get([1], in: b) == [20])
                #expect(try db.get([2], in: a) == nil)
                db.close()
            }
            // Reopen listing only one family: existing families are opened anyway.
            let db = try RocksDB(path: path, columnFamilies: ["a"])
            defer { db.close() }
            #expect(db.columnFamilies.keys.sorted() == ["a", "b", "default"])
            #expect(try db.get([1], in: try db.columnFamily("b")) == [20])
            #expect(try db.get([1], in: try db.columnFamily("a")) == [10])
            expectStorageError(.invalidArgument) { _ = try db.columnFamily("missing") }
        }
    }

    @Test("write batches apply put, delete and delete-range atomically and in order")
    func batches() throws {
        try withTemporaryDirectory { directory in
            let db = try RocksDB(path: directory + "/db", columnFamilies: ["x", "y"])
            defer { db.close() }
            let x = try db.columnFamily("x")
            let y = try db.columnFamily("y")
            try db.write(sync: true) { batch in
                for key in UInt8(0)..<10 { try batch.put([key], [key], in: x) }
                try batch.put([0], [99], in: y)
                #expect(batch.count == 11)
            }
            try db.write(sync: false) { batch in
                try batch.deleteRange(from: [2], to: [8], in: x)
                try batch.put([5], [55], in: x)  // after the range delete: wins
                try batch.delete([0], in: y)
            }
            let iterator = try db.makeIterator(in: x)
            iterator.seekToFirst()
            var seen: [[UInt8]] = []
            while iterator.isValid {
                seen.append((iterator.key ?? []) + (iterator.value ?? []))
                iterator.next()
            }
            try iterator.checkError()
            #expect(seen == [[0, 0], [1, 1], [5, 55], [8, 8], [9, 9]])
            #expect(try db.get([0], in: y) == nil)

            // A throwing batch body writes nothing.
            struct Abort: Error {}
            #expect(throws: Abort.self) {
                try db.write(sync: true) { batch in
                    try batch.put([42], [42], in: x)
                    throw Abort()
                }
            }
            #expect(try db.get([42], in: x) == nil)
            try db.deleteRange(from: [0], to: [9], in: x, sync: true)
            #expect(try db.get([8], in: x) == nil)
            #expect(try db.get([9], in: x) == [9])
            try db.flush()
            try db.syncWAL()
            #expect(try db.get([9], in: x) == [9])
        }
    }

    @Test("iterators respect lower and upper bounds and seek")
    func iteratorBounds() throws {
        try withTemporaryDirectory { directory in
            let db = try RocksDB(path: directory + "/db", columnFamilies: ["x"])
            defer { db.close() }
            let x = try db.columnFamily("x")
            try db.write(sync: false) { batch in
                for key in UInt8(0)..<20 { try batch.put([key], [key &* 2], in: x) }
            }
            let iterator = try db.makeIterator(in: x, lowerBound: [5], upperBound: [10])
            iterator.seekToFirst()
            #expect(iterator.key == [5])
            iterator.seekToLast()
            #expect(iterator.key == [9])
            #expect(iterator.value == [18])
            iterator.seek([7])
            #expect(iterator.key == [7])
            iterator.next()
            iterator.next()
            iterator.next()
            #expect(iterator.isValid == false)
            #expect(iterator.key == nil)
            iterator.seekForPrev([200])
            #expect(iterator.key == [9])
            iterator.previous()
            #expect(iterator.withKey { Array($0) } == [8])
            iterator.seek([0])
            #expect(iterator.key == [5])
        }
    }

    @Test("calls after close throw .closed; close is idempotent; a live iterator keeps the database usable")
    func closeExactlyOnce() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/db"
            let db = try RocksDB(path: path, columnFamilies: ["x"])
            let x = try db.columnFamily("x")
            try db.put([1], [1], in: x, sync: true)
            let iterator = try db.makeIterator(in: x)
            db.close()
            db.close()
            #expect(db.isClosed)
            expectStorageError(.closed) { _ = try db.get([1], in: x) }
            expectStorageError(.closed) { try db.put([2], [2], in: x, sync: true) }
            expectStorageError(.closed) { _ = try db.makeIterator(in: x) }
            // The iterator was created before close and still reads its view.
            iterator.seekToFirst()
            #expect(iterator.value == [1])
        }
    }

    @Test("opening a path that is a file, or a locked database, gives typed errors")
    func openErrors() throws {
        try withTemporaryDirectory { directory in
            let filePath = directory + "/file"
            #expect(FileManager.default.createFile(atPath: filePath, contents: Data([1, 2, 3])))
            expectStorageError(.io) { _ = try RocksDB(path: filePath, columnFamilies: ["x"]) }

            let db = try RocksDB(path: directory + "/db", columnFamilies: ["x"])
            defer { db.close() }
            expectStorageError(.busy) { _ = try RocksDB(path: directory + "/db", columnFamilies: ["x"]) }

            var options = RocksDB.Options()
            options.createIfMissing = false
            expectStorageError(.invalidArgument) {
                _ = try RocksDB(path: directory + "/absent", columnFamilies: [], options: options)
            }
        }
    }

    @Test("a rarely written column family does not pin the write-ahead log: it is flushed at maxTotalWALSize")
    func writeAheadLogStaysBounded() async throws {
        try await withTemporaryDirectoryAsync { directory in
            let path = directory + "/db"
            var options = RocksDB.Options()
            options.writeBufferSize = 1 << 20  // the limit is then 3 MiB
            let db = try RocksDB(path: path, columnFamilies: ["rare", "busy"], options: options)
            defer { db.close() }
            let rare = try db.columnFamily("rare")
            let busy = try db.columnFamily("busy")
            // One small write in `rare` sits in the first log file until `rare` is flushed. RocksDB's own limit (four
            // times every memtable: 24 MiB here) would keep every log file of the 10 MiB below.
            try db.put([0], [0], in: rare, sync: true)
            let value = [UInt8](repeating: 7, count: 64 << 10)
            for key in 0..<160 {
                try db.put([UInt8(key >> 8), UInt8(key & 0xFF)], value, in: busy, sync: false)
            }
            func logBytes() throws -> Int {
                // A log file listed may be gone by the time it is looked at: RocksDB deletes old ones in the
                // background.
                try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".log") }.reduce(0) {
                    $0 + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + $1))?[.size] as? Int ?? 0)
                }
            }
            // Old log files go once the background flush they wait for is done.
            let deadline = ContinuousClock.now + .seconds(60)
            while try logBytes() > 6 << 20, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try logBytes() <= 6 << 20)
            let optionsFile = try FileManager.default.contentsOfDirectory(atPath: path).filter {
                $0.hasPrefix("OPTIONS-")
            }.sorted().last
            let written = try String(contentsOfFile: path + "/" + (optionsFile ?? "missing"), encoding: .utf8)
            #expect(written.contains("max_total_wal_size=\(3 << 20)"))
            #expect(try db.get([0], in: rare) == [0])
        }
    }
}
