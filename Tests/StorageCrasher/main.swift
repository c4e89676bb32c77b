// bifrost-storage-crasher: a child process for the storage crash tests.
//
// Usage:
//   bifrost-storage-crasher append DIR     append synced batches to group 7's log in the log database DIR,
//                                          printing "synced <lastIndex> <lastTerm>" after each durable batch
//   bifrost-storage-crasher snapshot DIR   save snapshots of growing size for group 7 in the snapshot directory
//                                          DIR, printing "saved <index>" after each completed save
//
// The test SIGKILLs the process mid-work and then checks what it reads back. The process also stops by itself
// after `maxRunSeconds`, so a test that dies cannot leave it running for long. The payload formulas below must
// match `CrashPayload` in Tests/BifrostStorageTests/CrashTests.swift.

import BifrostStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let groupID: UInt64 = 7
let maxRunSeconds: Int = 60

func logPayload(index: UInt64, term: UInt64) -> [UInt8] {
    let length = Int(index % 200) + 1
    return (0..<length).map { UInt8(truncatingIfNeeded: index &* 31 &+ term &* 17 &+ UInt64($0)) }
}

func snapshotChunk(index: UInt64, offset: UInt64, count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ((offset + UInt64($0)) / 7) &+ index) }
}

func snapshotSize(index: UInt64) -> UInt64 {
    (index % 16 + 1) * (256 << 10) + index % 1000
}

func report(_ line: String) {
    print(line)
    // `nil` flushes every stream, stdout included (naming `stdout` is not concurrency-safe in Swift 6).
    fflush(nil)
}

func fail(_ message: String) -> Never {
    var text = "bifrost-storage-crasher: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func secondsSinceStart() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec
}

func runAppend(directory: String) throws {
    let database = try RaftLogDatabase(path: directory)
    let store = try database.store(forGroup: groupID)
    let start = secondsSinceStart()
    var term = max(store.state.lastTerm, 1)
    var batch: UInt64 = 0
    while secondsSinceStart() - start < maxRunSeconds {
        batch += 1
        let state = store.state
        var first = state.lastIndex + 1
        if batch % 10 == 0 && state.lastIndex >= state.firstIndex + 2 {
            // Overwrite the last three entries with a newer term, as a follower does after a leader change.
            first = state.lastIndex - 2
            term += 1
        }
        let count = 1 + batch % 16
        let entries = (first..<(first + count)).map {
            LogEntry(index: $0, term: term, payload: logPayload(index: $0, term: term))
        }
        let last = first + count - 1
        // The hard state mirrors the last entry, so the checker can tell that both were written atomically.
        try store.save(
            hardState: HardState(term: term, vote: 1, commit: last), configuration: [UInt8(truncatingIfNeeded: term)],
            entries: entries, sync: true)
        report("synced \(last) \(term)")
    }
}

func runSnapshot(directory: String) throws {
    let store = try SnapshotStore(directory: directory)
    let start = secondsSinceStart()
    var index = (try store.latestMetadata(groupID: groupID)?.index ?? 0) + 1
    while secondsSinceStart() - start < maxRunSeconds {
        let metadata = SnapshotMetadata(
            groupID: groupID, index: index, term: index / 3 + 1, configuration: Array("config-\(index)".utf8))
        let writer = try store.beginSnapshot(metadata)
        let size = snapshotSize(index: index)
        var offset: UInt64 = 0
        while offset < size {
            let count = Int(min(64 << 10, size - offset))
            try writer.write(snapshotChunk(index: index, offset: offset, count: count))
            offset += UInt64(count)
        }
        try writer.finish()
        report("saved \(index)")
        index += 1
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    fail("usage: bifrost-storage-crasher (append|snapshot) DIR")
}
do {
    switch arguments[1] {
    case "append": try runAppend(directory: arguments[2])
    case "snapshot": try runSnapshot(directory: arguments[2])
    default: fail("unknown mode '\(arguments[1])'")
    }
} catch {
    fail("\(error)")
}
