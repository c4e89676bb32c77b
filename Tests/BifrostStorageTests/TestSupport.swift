import BifrostStorage
import Foundation
import Testing

/// Creates a fresh, uniquely named temporary directory.
func makeTemporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/bifrost-storage-XXXXXX").utf8CString)
    return try template.withUnsafeMutableBufferPointer { buffer -> String in
        guard let base = buffer.baseAddress, let created = mkdtemp(base) else {
            throw StorageError(code: .io, message: "mkdtemp failed")
        }
        return String(cString: created)
    }
}

/// A fresh temporary directory for one test, removed afterwards.
func withTemporaryDirectory<Result>(_ body: (String) throws -> Result) throws -> Result {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Asserts that `body` throws a ``StorageError`` with `code`.
func expectStorageError(
    _ code: StorageError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record(
            "expected a StorageError with code \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as StorageError {
        #expect(error.code == code, "unexpected error: \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a StorageError with code \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

func makeEntries(_ range: ClosedRange<UInt64>, term: UInt64, size: Int = 10) -> [LogEntry] {
    range.map { index in
        LogEntry(index: index, term: term, payload: (0..<size).map { UInt8(truncatingIfNeeded: Int(index) &+ $0) })
    }
}

/// The async variant of ``withTemporaryDirectory(_:)``.
func withTemporaryDirectoryAsync<Result>(_ body: (String) async throws -> Result) async throws -> Result {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}
