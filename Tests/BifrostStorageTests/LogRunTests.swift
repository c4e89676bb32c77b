import BifrostStorage
import Foundation
import Testing

/// The `log` column family stores one key per run of consecutive entries (format 2), not one per entry.
@Suite("RaftLogStore runs")
struct LogRunTests {
    /// The first index of every run of `group`, in key order.
    func runStarts(_ database: RaftLogDatabase, group: UInt64) throws -> [UInt64] {
        let log = try database.database.columnFamily(RaftLogDatabase.logColumnFamily)
        let iterator = try database.database.makeIterator(in: log)
        var starts: [UInt64] = []
        iterator.seekToFirst()
        while iterator.isValid {
            let key = iterator.withKey { Array($0) }
            if key.count == 16, key.prefix(8).reduce(0, { $0 << 8 | UInt64($1) }) == group {
                starts.append(key.suffix(8).reduce(0) { $0 << 8 | UInt64($1) })
            }
            iterator.next()
        }
        try iterator.checkError()
        return starts
    }

    /// Runs `write` on group 1 of a fresh log database, then `check` on the same group after closing and
    /// reopening it (so that `check` sees only what reached the disk).
    func writeThenReopen(
        _ write: (RaftLogDatabase, RaftLogStore) throws -> Void, check: (RaftLogStore) throws -> Void
    ) throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                defer { database.close() }
                try write(database, try database.store(forGroup: 1))
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            try check(try database.store(forGroup: 1))
        }
    }

    @Test("one append is one key, and a large one is split into runs of at most 64 KiB")
    func appendsAreRuns() throws {
        // 125-byte entries: 524 fit in 64 KiB.
        let written = makeEntries(1...2_000, term: 1, size: 100)
        try writeThenReopen { database, store in
            try store.append(Array(written[0..<10]), sync: true)
            #expect(try runStarts(database, group: 1) == [1])
            try store.append(Array(written[10...]), sync: true)
            #expect(try runStarts(database, group: 1) == [1, 11, 535, 1_059, 1_583])
            // Reads start and end inside runs and cross their boundaries.
            #expect(try store.entries(in: 5..<600) == Array(written[4..<599]))
            #expect(try store.entries(in: 534..<536) == Array(written[533..<535]))
            #expect(try store.term(at: 1_000) == 1)
        } check: { (store: RaftLogStore) throws in
            #expect(store.lastIndex == 2_000)
            #expect(try store.entries(in: 1..<2_001) == written)
            #expect(try store.verifyIntegrity() == 2_000)
        }
    }

    @Test("truncating inside a run keeps its prefix, durably")
    func truncationInsideRuns() throws {
        try writeThenReopen { database, store in
            try store.append(makeEntries(1...10, term: 1), sync: true)
            try store.append(makeEntries(11...20, term: 1), sync: true)
            // A conflicting append from 15: the run at 11 keeps 11...14, the new run starts at 15.
            try store.append(makeEntries(15...16, term: 2, size: 4), sync: true)
            #expect(try runStarts(database, group: 1) == [1, 11, 15])
            #expect(store.lastIndex == 16)
            // Truncating from 5 rewrites the run at 1 and removes the others.
            try store.truncateSuffix(from: 5, sync: true)
            #expect(try runStarts(database, group: 1) == [1])
            #expect(store.lastIndex == 4)
            #expect(try store.term(at: 4) == 1)
            try store.append(makeEntries(5...6, term: 3), sync: true)
        } check: { (store: RaftLogStore) throws in
            #expect(store.lastIndex == 6)
            #expect(store.state.lastTerm == 3)
            #expect(try store.entries(in: 1..<7) == makeEntries(1...4, term: 1) + makeEntries(5...6, term: 3))
            #expect(try store.verifyIntegrity() == 6)
        }
    }

    @Test("compacting inside a run rewrites the rest of it to start at the first index")
    func compactionInsideRuns() throws {
        try writeThenReopen { database, store in
            try store.append(makeEntries(1...10, term: 1), sync: true)
            try store.append(makeEntries(11...20, term: 2), sync: true)
            try store.compactPrefix(through: 13, term: 2, sync: true)
            #expect(try runStarts(database, group: 1) == [14])
            #expect(try store.entries(in: 14..<21) == makeEntries(14...20, term: 2))
            // Through the end of a run: nothing is rewritten.
            try store.append(makeEntries(21...30, term: 2), sync: true)
            try store.compactPrefix(through: 20, term: 2, sync: true)
            #expect(try runStarts(database, group: 1) == [21])
        } check: { (store: RaftLogStore) throws in
            #expect(store.firstIndex == 21)
            #expect(store.lastIndex == 30)
            #expect(try store.verifyIntegrity() == 10)
        }
    }

    @Test("a format-1 database, one entry per key, is read as runs of one and upgraded to format 2")
    func readsFormatOne() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            let entries = makeEntries(1...5, term: 1)
            do {
                // Written as format 1 did: the format record and one key per entry.
                let database = try RocksDB(
                    path: path,
                    columnFamilies: [RaftLogDatabase.logColumnFamily, RaftLogDatabase.metaColumnFamily])
                let log = try database.columnFamily(RaftLogDatabase.logColumnFamily)
                let meta = try database.columnFamily(RaftLogDatabase.metaColumnFamily)
                try database.put(Array("bifrost.log.format".utf8), metaRecord([1]), in: meta, sync: true)
                for entry in entries {
                    try database.put(entryKey(group: 1, index: entry.index), try entry.encoded(), in: log, sync: true)
                }
                database.close()
            }
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 1)
                #expect(store.lastIndex == 5)
                #expect(try store.entries(in: 1..<6) == entries)
                try store.append(makeEntries(4...8, term: 2), sync: true)
                try store.compactPrefix(through: 2, term: 1, sync: true)
                #expect(try runStarts(database, group: 1) == [3, 4])
                let meta = try database.database.columnFamily(RaftLogDatabase.metaColumnFamily)
                #expect(try database.database.get(Array("bifrost.log.format".utf8), in: meta) == metaRecord([2]))
                #expect(try store.verifyIntegrity() == 6)
                database.close()
            }
            // A format this code does not know is refused.
            do {
                let database = try RocksDB(
                    path: path,
                    columnFamilies: [RaftLogDatabase.logColumnFamily, RaftLogDatabase.metaColumnFamily])
                let meta = try database.columnFamily(RaftLogDatabase.metaColumnFamily)
                try database.put(Array("bifrost.log.format".utf8), metaRecord([3]), in: meta, sync: true)
                database.close()
            }
            expectStorageError(.corruption) { _ = try RaftLogDatabase(path: path) }
        }
    }

    @Test("a run with a truncated or out-of-sequence entry is corruption")
    func malformedRuns() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                try database.store(forGroup: 1).append(makeEntries(1...4, term: 1), sync: true)
                try database.store(forGroup: 2).append(makeEntries(1...4, term: 1), sync: true)
                let log = try database.database.columnFamily(RaftLogDatabase.logColumnFamily)
                // Group 1: the run at 1 loses its last byte. Group 2: its second entry claims index 7.
                let key1 = entryKey(group: 1, index: 1)
                let value1 = try #require(try database.database.get(key1, in: log))
                try database.database.put(key1, Array(value1.dropLast()), in: log, sync: true)
                let key2 = entryKey(group: 2, index: 1)
                var value2 = try #require(try database.database.get(key2, in: log))
                value2[35 + 8] = 7
                try database.database.put(key2, value2, in: log, sync: true)
                // Group 3: after a snapshot marker just below the largest index, a run that claims to go past it.
                // Group 4: a snapshot marker at the largest index. Neither may overflow an index.
                let meta = try database.database.columnFamily(RaftLogDatabase.metaColumnFamily)
                let top = LogEntry(index: .max, term: 1, payload: [1])
                try database.database.put(
                    entryKey(group: 3, index: .max), try top.encoded() + top.encoded(), in: log, sync: true)
                try database.database.put(
                    markerKey(group: 3), metaRecord(bigEndian(.max - 1) + bigEndian(1)), in: meta, sync: true)
                try database.database.put(
                    markerKey(group: 4), metaRecord(bigEndian(.max) + bigEndian(1)), in: meta, sync: true)
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            for group: UInt64 in 1...4 {
                expectStorageError(.corruption) { _ = try database.store(forGroup: group) }
            }
        }
    }

    func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    func entryKey(group: UInt64, index: UInt64) -> [UInt8] { bigEndian(group) + bigEndian(index) }

    /// The key of a group's snapshot marker in `meta` (kind 3).
    func markerKey(group: UInt64) -> [UInt8] { bigEndian(group) + [3] }

    /// A metadata record: `version 1 | body | CRC-32C (BE)`.
    func metaRecord(_ body: [UInt8]) -> [UInt8] {
        var record: [UInt8] = [1] + body
        var crc = CRC32C()
        crc.update(record)
        record += (0..<4).map { UInt8(truncatingIfNeeded: crc.value >> (24 - 8 * UInt32($0))) }
        return record
    }
}
