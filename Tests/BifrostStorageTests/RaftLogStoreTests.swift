import BifrostStorage
import Foundation
import Testing

@Suite("RaftLogStore")
struct RaftLogStoreTests {
    @Test("a fresh log is empty with snapshot marker (0, 0)")
    func freshLog() throws {
        try withTemporaryDirectory { directory in
            let database = try RaftLogDatabase(path: directory + "/log")
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            #expect(store.firstIndex == 1)
            #expect(store.lastIndex == 0)
            #expect(try store.term(at: 0) == 0)
            #expect(store.hardState == .initial)
            #expect(store.configuration == nil)
            #expect(try store.entries(in: 1..<1) == [])
            expectStorageError(.notFound) { _ = try store.entries(in: 1..<2) }
            expectStorageError(.notFound) { _ = try store.term(at: 1) }
            #expect(try store.verifyIntegrity() == 0)
        }
    }

    @Test("appended entries, hard state and configuration survive a reopen")
    func reopenDurability() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            let entries = makeEntries(1...100, term: 3, size: 50)
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 9)
                try store.append(Array(entries[0..<40]), sync: true)
                try store.save(
                    hardState: HardState(term: 3, vote: 2, commit: 40), configuration: [1, 2, 3],
                    entries: Array(entries[40...]), sync: true)
                database.close()
                expectStorageError(.closed) { try store.append(makeEntries(101...101, term: 3), sync: true) }
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            let store = try database.store(forGroup: 9)
            #expect(store.firstIndex == 1)
            #expect(store.lastIndex == 100)
            #expect(store.state.lastTerm == 3)
            #expect(store.hardState == HardState(term: 3, vote: 2, commit: 40))
            #expect(store.configuration == [1, 2, 3])
            #expect(try store.entries(in: 1..<101) == entries)
            #expect(try store.term(at: 57) == 3)
            #expect(try store.verifyIntegrity() == 100)
            #expect(try database.store(forGroup: 9) === store)
        }
    }

    @Test("appending at or below the last index replaces the conflicting suffix")
    func conflictingAppend() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 1)
                try store.append(makeEntries(1...10, term: 1), sync: true)
                try store.append(makeEntries(6...7, term: 2, size: 3), sync: true)
                #expect(store.lastIndex == 7)
                #expect(try store.term(at: 5) == 1)
                #expect(try store.term(at: 6) == 2)
                #expect(try store.entries(in: 6..<8) == makeEntries(6...7, term: 2, size: 3))
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            #expect(store.lastIndex == 7)
            #expect(store.state.lastTerm == 2)
            #expect(try store.entries(in: 1..<8) == makeEntries(1...5, term: 1) + makeEntries(6...7, term: 2, size: 3))
            #expect(try store.verifyIntegrity() == 7)
        }
    }

    @Test("invalid appends are rejected and change nothing")
    func invalidAppends() throws {
        try withTemporaryDirectory { directory in
            let database = try RaftLogDatabase(path: directory + "/log")
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            try store.append(makeEntries(1...5, term: 2), sync: false)
            // A gap after the last index.
            expectStorageError(.invalidArgument) { try store.append(makeEntries(7...8, term: 2), sync: false) }
            // Non-contiguous entries.
            expectStorageError(.invalidArgument) {
                try store.append(makeEntries(6...6, term: 2) + makeEntries(8...8, term: 2), sync: false)
            }
            // Decreasing terms inside the batch and relative to the previous entry.
            expectStorageError(.invalidArgument) {
                try store.append(makeEntries(6...6, term: 3) + makeEntries(7...7, term: 2), sync: false)
            }
            expectStorageError(.invalidArgument) { try store.append(makeEntries(6...6, term: 1), sync: false) }
            // Index 0 is never a log entry.
            expectStorageError(.invalidArgument) { try store.append(makeEntries(0...1, term: 2), sync: false) }
            #expect(store.lastIndex == 5)
            #expect(try store.verifyIntegrity() == 5)
        }
    }

    @Test("truncateSuffix removes the tail and is durable")
    func truncateSuffix() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 1)
                try store.append(makeEntries(1...5, term: 1) + makeEntries(6...10, term: 2), sync: true)
                try store.truncateSuffix(from: 11, sync: true)  // beyond the end: no-op
                #expect(store.lastIndex == 10)
                try store.truncateSuffix(from: 6, sync: true)
                #expect(store.lastIndex == 5)
                #expect(store.state.lastTerm == 1)
                expectStorageError(.notFound) { _ = try store.term(at: 6) }
                try store.append(makeEntries(6...6, term: 4), sync: true)
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            #expect(store.lastIndex == 6)
            #expect(try store.term(at: 6) == 4)
            #expect(try store.verifyIntegrity() == 6)
            try store.truncateSuffix(from: 1, sync: true)
            #expect(store.lastIndex == 0)
            #expect(store.firstIndex == 1)
        }
    }

    @Test("compactPrefix keeps the boundary term and makes older indexes .compacted")
    func compaction() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 1)
                try store.append(makeEntries(1...10, term: 1) + makeEntries(11...20, term: 2), sync: true)
                expectStorageError(.invalidArgument) { try store.compactPrefix(through: 12, term: 1, sync: true) }
                expectStorageError(.invalidArgument) { try store.compactPrefix(through: 21, term: 2, sync: true) }
                try store.compactPrefix(through: 12, term: 2, sync: true)
                #expect(store.firstIndex == 13)
                #expect(store.snapshotIndex == 12)
                #expect(try store.term(at: 12) == 2)
                #expect(try store.term(at: 13) == 2)
                expectStorageError(.compacted) { _ = try store.term(at: 11) }
                expectStorageError(.compacted) { _ = try store.entries(in: 12..<14) }
                expectStorageError(.compacted) { _ = try store.entries(in: 1..<3) }
                expectStorageError(.compacted) { try store.truncateSuffix(from: 12, sync: true) }
                expectStorageError(.invalidArgument) { try store.append(makeEntries(12...13, term: 2), sync: true) }
                #expect(try store.entries(in: 13..<21) == makeEntries(13...20, term: 2))
                // Compacting below the marker is a no-op.
                try store.compactPrefix(through: 5, term: 1, sync: true)
                #expect(store.snapshotIndex == 12)
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            #expect(store.firstIndex == 13)
            #expect(store.lastIndex == 20)
            #expect(try store.term(at: 12) == 2)
            expectStorageError(.compacted) { _ = try store.entries(in: 12..<13) }
            #expect(try store.verifyIntegrity() == 8)
            // Compacting everything leaves an empty log whose last index is the marker.
            try store.compactPrefix(through: 20, term: 2, sync: true)
            #expect(store.firstIndex == 21)
            #expect(store.lastIndex == 20)
            #expect(try store.term(at: 20) == 2)
            try store.append(makeEntries(21...21, term: 3), sync: true)
            #expect(try store.entries(in: 21..<22) == makeEntries(21...21, term: 3))
        }
    }

    @Test("resetToSnapshot discards the log and moves the marker")
    func resetToSnapshot() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 1)
                try store.append(makeEntries(1...10, term: 1), sync: true)
                try store.resetToSnapshot(index: 50, term: 4, configuration: [9], sync: true)
                #expect(store.firstIndex == 51)
                #expect(store.lastIndex == 50)
                #expect(try store.term(at: 50) == 4)
                expectStorageError(.invalidArgument) {
                    try store.resetToSnapshot(index: 49, term: 4, configuration: nil, sync: true)
                }
                try store.append(makeEntries(51...52, term: 5), sync: true)
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            #expect(store.snapshotIndex == 50)
            #expect(store.lastIndex == 52)
            #expect(store.configuration == [9])
            #expect(try store.verifyIntegrity() == 2)
        }
    }

    @Test("hard state, configuration and entries given together are one atomic batch")
    func atomicHardStateWithEntries() throws {
        try withTemporaryDirectory { directory in
            let database = try RaftLogDatabase(path: directory + "/log")
            defer { database.close() }
            let store = try database.store(forGroup: 3)
            try store.save(
                hardState: HardState(term: 1, vote: nil, commit: 0), configuration: nil, entries: [], sync: true)
            // An invalid entry batch must not persist the hard state or configuration given with it.
            expectStorageError(.invalidArgument) {
                try store.save(
                    hardState: HardState(term: 2, vote: 5, commit: 3), configuration: [7],
                    entries: makeEntries(2...3, term: 2), sync: true)
            }
            #expect(store.hardState == HardState(term: 1, vote: nil, commit: 0))
            #expect(store.configuration == nil)
            try store.save(
                hardState: HardState(term: 2, vote: 5, commit: 3), configuration: [7],
                entries: makeEntries(1...3, term: 2), sync: true)
            let state = store.state
            #expect(state.hardState == HardState(term: 2, vote: 5, commit: 3))
            #expect(state.configuration == [7])
            #expect(state.lastIndex == 3)
            // Hard state alone (vote cleared) keeps the entries.
            try store.save(
                hardState: HardState(term: 3, vote: nil, commit: 3), configuration: nil, entries: [], sync: true)
            #expect(store.hardState.vote == nil)
            #expect(store.lastIndex == 3)
            // The crash test (CrashTests.appendSurvivesSIGKILL) checks the atomicity across process death.
        }
    }

    @Test("groups sharing a database are independent")
    func multipleGroups() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            let groups: [UInt64] = [0, 1, 2, UInt64.max]
            do {
                let database = try RaftLogDatabase(path: path)
                for (offset, group) in groups.enumerated() {
                    let store = try database.store(forGroup: group)
                    let count = UInt64(5 + offset * 3)
                    try store.save(
                        hardState: HardState(term: UInt64(offset + 1), vote: group, commit: count),
                        configuration: [UInt8(offset)], entries: makeEntries(1...count, term: UInt64(offset + 1)),
                        sync: true)
                }
                try database.store(forGroup: 1).compactPrefix(through: 4, term: 2, sync: true)
                try database.store(forGroup: 2).truncateSuffix(from: 3, sync: true)
                try database.store(forGroup: UInt64.max).resetToSnapshot(
                    index: 100, term: 9, configuration: nil, sync: true)
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            let g0 = try database.store(forGroup: 0)
            #expect(g0.firstIndex == 1)
            #expect(g0.lastIndex == 5)
            #expect(g0.hardState == HardState(term: 1, vote: 0, commit: 5))
            #expect(try g0.entries(in: 1..<6) == makeEntries(1...5, term: 1))
            let g1 = try database.store(forGroup: 1)
            #expect(g1.firstIndex == 5)
            #expect(g1.lastIndex == 8)
            #expect(g1.configuration == [1])
            let g2 = try database.store(forGroup: 2)
            #expect(g2.lastIndex == 2)
            #expect(try g2.entries(in: 1..<3) == makeEntries(1...2, term: 3))
            let gMax = try database.store(forGroup: UInt64.max)
            #expect(gMax.lastIndex == 100)
            #expect(gMax.firstIndex == 101)
            #expect(try database.groupIDs() == groups)
            let untouched = try database.store(forGroup: 3)
            #expect(untouched.lastIndex == 0)
            for group in groups + [3] {
                _ = try database.store(forGroup: group).verifyIntegrity()
            }
        }
    }

    @Test("reads honour the byte limit but always return at least one entry")
    func byteLimitedReads() throws {
        try withTemporaryDirectory { directory in
            let database = try RaftLogDatabase(path: directory + "/log")
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            let entries = makeEntries(1...20, term: 1, size: 75)  // 100 bytes each when encoded
            try store.append(entries, sync: false)
            #expect(entries[0].encodedSize == 100)
            #expect(try store.entries(in: 1..<21, maxBytes: 0) == [entries[0]])
            #expect(try store.entries(in: 1..<21, maxBytes: 99) == [entries[0]])
            #expect(try store.entries(in: 1..<21, maxBytes: 100) == [entries[0]])
            #expect(try store.entries(in: 1..<21, maxBytes: 350) == Array(entries[0..<3]))
            #expect(try store.entries(in: 5..<21, maxBytes: 400) == Array(entries[4..<8]))
            #expect(try store.entries(in: 5..<7, maxBytes: 10_000) == Array(entries[4..<6]))
            #expect(try store.entries(in: 1..<21).count == 20)
        }
    }

    @Test("a damaged entry or metadata record is reported as corruption")
    func corruptionDetected() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/log"
            do {
                let database = try RaftLogDatabase(path: path)
                let store = try database.store(forGroup: 1)
                try store.save(
                    hardState: HardState(term: 1, vote: 1, commit: 1), configuration: nil,
                    entries: makeEntries(1...10, term: 1), sync: true)
                // Damage entry 5 (inside the run at 1, whose entries take 35 bytes each) and the hard state behind
                // the store's back, as a bad disk would.
                let log = try database.database.columnFamily(RaftLogDatabase.logColumnFamily)
                let key: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
                var value = try #require(try database.database.get(key, in: log))
                #expect(value.count == 10 * 35)
                value[4 * 35 + 25] ^= 0x01
                try database.database.put(key, value, in: log, sync: true)
                expectStorageError(.corruption) { _ = try store.entries(in: 1..<11) }
                expectStorageError(.corruption) { _ = try store.term(at: 5) }
                expectStorageError(.corruption) { try store.verifyIntegrity() }
                #expect(try store.entries(in: 1..<5).count == 4)
                let meta = try database.database.columnFamily(RaftLogDatabase.metaColumnFamily)
                let metaKey: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1, 1]
                var record = try #require(try database.database.get(metaKey, in: meta))
                record[3] ^= 0x80
                try database.database.put(metaKey, record, in: meta, sync: true)

                // Group 2 loses its first run (a gap after the snapshot marker); group 3 gets a malformed key.
                try database.store(forGroup: 2).append(makeEntries(1...1, term: 1), sync: true)
                try database.store(forGroup: 2).append(makeEntries(2...3, term: 1), sync: true)
                try database.database.delete([0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1], in: log, sync: true)
                try database.store(forGroup: 3).append(makeEntries(1...3, term: 1), sync: true)
                try database.database.put([0, 0, 0, 0, 0, 0, 0, 3, 9], [1], in: log, sync: true)
                database.close()
            }
            let database = try RaftLogDatabase(path: path)
            defer { database.close() }
            expectStorageError(.corruption) { _ = try database.store(forGroup: 1) }
            expectStorageError(.corruption) { _ = try database.store(forGroup: 2) }
            expectStorageError(.corruption) { _ = try database.store(forGroup: 3) }
        }
    }

    @Test("a store is safe to read from other tasks while one task appends")
    func concurrentReaders() async throws {
        try await withTemporaryDirectoryAsync { directory in
            let database = try RaftLogDatabase(path: directory + "/log")
            defer { database.close() }
            let store = try database.store(forGroup: 1)
            try store.append(makeEntries(1...1, term: 1), sync: false)
            try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask {
                    var term: UInt64 = 1
                    for round in 0..<300 {
                        let last = store.lastIndex
                        if round % 7 == 6 {
                            term += 1
                            try store.append(makeEntries((last - 1)...(last + 1), term: term), sync: false)
                        } else if round % 50 == 49 {
                            try store.compactPrefix(through: last - 5, term: try store.term(at: last - 5), sync: false)
                        } else {
                            try store.append(makeEntries((last + 1)...(last + 3), term: term), sync: false)
                        }
                    }
                    return 0
                }
                for _ in 0..<2 {
                    group.addTask {
                        var reads = 0
                        while reads < 400 {
                            let state = store.state
                            guard state.lastIndex >= state.firstIndex else { continue }
                            do {
                                let entries = try store.entries(
                                    in: state.firstIndex..<(state.lastIndex + 1), maxBytes: 2_000)
                                #expect(!entries.isEmpty)
                                #expect(entries.first?.index == state.firstIndex)
                                for (a, b) in zip(entries, entries.dropFirst()) {
                                    #expect(b.index == a.index + 1)
                                    #expect(b.term >= a.term)
                                }
                            } catch let error as StorageError where error.code == .compacted || error.code == .notFound
                            {
                                // The writer compacted or truncated between reading the state and the read.
                            }
                            reads += 1
                        }
                        return reads
                    }
                }
                for try await _ in group {}
            }
            #expect(try store.verifyIntegrity() > 0)
        }
    }
}
