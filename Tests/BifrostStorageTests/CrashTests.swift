import BifrostStorage
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The deterministic payloads written by `bifrost-storage-crasher`; must match Tests/StorageCrasher/main.swift.
enum CrashPayload {
    static let groupID: UInt64 = 7

    static func log(index: UInt64, term: UInt64) -> [UInt8] {
        let length = Int(index % 200) + 1
        return (0..<length).map { UInt8(truncatingIfNeeded: index &* 31 &+ term &* 17 &+ UInt64($0)) }
    }

    static func snapshotChunk(index: UInt64, offset: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ((offset + UInt64($0)) / 7) &+ index) }
    }

    static func snapshotSize(index: UInt64) -> UInt64 {
        (index % 16 + 1) * (256 << 10) + index % 1000
    }
}

/// Runs the crasher child, waits for `progressLines` lines of progress, SIGKILLs it mid-work, reaps it and returns
/// every line it printed (including any printed between the last read and the kill).
///
/// The blocking reads run on a thread of their own: a test that blocked one of the few cooperative-pool threads
/// for seconds would stall every other test of the run (and time out those with deadlines).
func runCrasherAndKill(mode: String, directory: String, progressLines: Int) async throws -> [String] {
    let run = try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(
                with: Result { try runCrasherBlocking(mode: mode, directory: directory, progressLines: progressLines) })
        }.start()
    }
    #expect(run.killed, "the crasher exited before making progress: \(run.stderr)")
    #expect(run.reason == .uncaughtSignal, "crasher stderr: \(run.stderr)")
    #expect(run.status == SIGKILL)
    return run.lines
}

/// What a crasher run left: its progress lines, whether it was killed, how it ended, and its stderr.
struct CrasherRun: Sendable {
    var lines: [String]
    var killed: Bool
    var reason: Process.TerminationReason
    var status: Int32
    var stderr: String
}

/// The blocking part of ``runCrasherAndKill(mode:directory:progressLines:)``.
func runCrasherBlocking(mode: String, directory: String, progressLines: Int) throws -> CrasherRun {
    let process = Process()
    process.executableURL = try crasherExecutable()
    process.arguments = [mode, directory]
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    // A watchdog so that a wedged child can never hang the suite; it is not used for synchronisation.
    let pid = process.processIdentifier
    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
    defer { watchdog.cancel() }

    var buffered = Data()
    var lines: [String] = []
    let reader = output.fileHandleForReading
    var killed = false
    while true {
        let data = reader.availableData
        if data.isEmpty { break }  // EOF: the child is gone
        buffered.append(data)
        while let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self))
            buffered.removeSubrange(buffered.startIndex...newline)
        }
        if !killed && lines.count >= progressLines {
            kill(pid, SIGKILL)
            killed = true
        }
    }
    process.waitUntilExit()
    let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return CrasherRun(
        lines: lines, killed: killed, reason: process.terminationReason, status: process.terminationStatus,
        stderr: stderr)
}

/// Finds the `bifrost-storage-crasher` binary, which SwiftPM builds next to the test bundle.
func crasherExecutable() throws -> URL {
    let name = "bifrost-storage-crasher"
    var candidates: [URL] = []
    if let override = ProcessInfo.processInfo.environment["BIFROST_STORAGE_CRASHER"] {
        candidates.append(URL(fileURLWithPath: override))
    }
    // The running test binary (e.g. .build/debug/BifrostPackageTests.xctest) sits in the build directory.
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent(name))
    }
    let argument0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(argument0.deletingLastPathComponent().appendingPathComponent(name))
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name))
    // On macOS the bundle is a directory: .build/debug/X.xctest/Contents/MacOS/X.
    candidates.append(
        argument0.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(name))
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate
    }
    throw StorageError(
        code: .notFound,
        message: "\(name) not found (looked at \(candidates.map(\.path))); build it with `swift build --build-tests`")
}

@Suite("Crash safety (SIGKILL)", .serialized)
struct CrashTests {
    @Test("a SIGKILLed appender leaves a consistent log that includes every batch reported synced")
    func appendSurvivesSIGKILL() async throws {
        try await withTemporaryDirectoryAsync { directory in
            let path = directory + "/log"
            for round in 1...3 {
                let lines = try await runCrasherAndKill(mode: "append", directory: path, progressLines: 40 * round)
                // Every line is one durable batch: "synced <lastIndex> <lastTerm>". The log may shrink by two when
                // a batch overwrites the tail with a newer term, so compare (term, index) pairs, not indexes alone.
                var reported: (term: UInt64, last: UInt64) = (0, 0)
                for line in lines {
                    let fields = line.split(separator: " ")
                    guard fields.count == 3, fields[0] == "synced", let last = UInt64(fields[1]),
                        let term = UInt64(fields[2])
                    else {
                        Issue.record("unexpected crasher output: \(line)")
                        continue
                    }
                    #expect(term > reported.term || (term == reported.term && last > reported.last))
                    reported = (term, last)
                }
                #expect(reported.last > 0)

                let database = try RaftLogDatabase(path: path)
                defer { database.close() }
                let store = try database.store(forGroup: CrashPayload.groupID)
                let state = store.state
                #expect(try store.verifyIntegrity() == Int(state.lastIndex - state.snapshotIndex))
                #expect(state.firstIndex == 1)
                // Nothing that was reported synced is lost: the recovered tail is the last reported batch or the
                // one batch that may have completed after it (killed before printing).
                let recoveredAtLeastReported =
                    state.lastTerm > reported.term
                    ? state.lastIndex + 2 >= reported.last
                    : state.lastTerm == reported.term && state.lastIndex >= reported.last
                #expect(
                    recoveredAtLeastReported,
                    """
                    round \(round): recovered (term \(state.lastTerm), last \(state.lastIndex)) is older than the \
                    reported (term \(reported.term), last \(reported.last))
                    """)
                // The hard state and configuration were saved in the same batch as the entries they describe.
                #expect(state.hardState.commit == state.lastIndex)
                #expect(state.hardState.term == state.lastTerm)
                #expect(state.configuration == [UInt8(truncatingIfNeeded: state.lastTerm)])
                var index = state.firstIndex
                while index <= state.lastIndex {
                    let entries = try store.entries(in: index..<(state.lastIndex + 1), maxBytes: 1 << 20)
                    for entry in entries {
                        #expect(entry.index == index)
                        if entry.payload != CrashPayload.log(index: entry.index, term: entry.term) {
                            Issue.record("payload of entry \(entry.index) does not match its formula")
                        }
                        index += 1
                    }
                }
            }
        }
    }

    @Test("a SIGKILLed snapshot saver leaves a valid latest snapshot at least as new as the last reported")
    func snapshotSurvivesSIGKILL() async throws {
        try await withTemporaryDirectoryAsync { directory in
            let path = directory + "/snapshots"
            var previous: UInt64 = 0
            for round in 1...3 {
                let lines = try await runCrasherAndKill(mode: "snapshot", directory: path, progressLines: 3 * round)
                let reported =
                    lines.compactMap { line -> UInt64? in
                        let fields = line.split(separator: " ")
                        return fields.count == 2 && fields[0] == "saved" ? UInt64(fields[1]) : nil
                    }.max() ?? 0
                #expect(reported > previous)

                let store = try SnapshotStore(directory: path)
                defer { store.close() }
                let names = try FileManager.default.contentsOfDirectory(atPath: path)
                #expect(names.filter { $0.hasPrefix("tmp-") } == [], "stale temporary files survived open")
                let reader = try #require(try store.openLatest(groupID: CrashPayload.groupID))
                let metadata = reader.metadata
                #expect(metadata.index >= reported, "round \(round): the latest snapshot is older than reported")
                #expect(metadata.term == metadata.index / 3 + 1)
                #expect(metadata.configuration == Array("config-\(metadata.index)".utf8))
                #expect(reader.payloadLength == CrashPayload.snapshotSize(index: metadata.index))
                var offset: UInt64 = 0
                while let chunk = try reader.readChunk(maxBytes: 64 << 10) {
                    if chunk != CrashPayload.snapshotChunk(index: metadata.index, offset: offset, count: chunk.count) {
                        Issue.record("snapshot \(metadata.index) payload differs at \(offset)")
                        break
                    }
                    offset += UInt64(chunk.count)
                }
                #expect(offset == reader.payloadLength)
                #expect(try store.snapshotIndexes(groupID: CrashPayload.groupID).count <= 2)
                previous = metadata.index
            }
        }
    }
}
