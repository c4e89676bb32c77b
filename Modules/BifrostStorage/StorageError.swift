/// An error thrown by `BifrostStorage`.
///
/// Every failure of the storage layer, whether it comes from RocksDB's `errptr`, from LZ4, from the file system or
/// from validating data read back from disk, is reported as a `StorageError` with a stable ``Code`` and a
/// human-readable ``message``. Callers branch on ``code``; the message is for logs only and may change.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The category of a ``StorageError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case io
            case corruption
            case notFound
            case invalidArgument
            case closed
            case compacted
            case busy
            case `internal`
        }

        private let wrapped: Wrapped

        private init(_ wrapped: Wrapped) {
            self.wrapped = wrapped
        }

        /// An operating-system or RocksDB I/O failure (disk full, permission denied, path is a file, ...).
        public static let io = Code(.io)
        /// Data read from disk failed validation: checksum mismatch, truncation, bad magic, bad header, or a
        /// structural inconsistency such as a gap in the log. The data must not be trusted.
        public static let corruption = Code(.corruption)
        /// The requested item does not exist (for example an index beyond the last log index, or no snapshot).
        public static let notFound = Code(.notFound)
        /// The caller passed an argument that violates the API contract (for example non-contiguous entries).
        public static let invalidArgument = Code(.invalidArgument)
        /// The store or database has been closed.
        public static let closed = Code(.closed)
        /// The requested log index lies in the prefix that was compacted into a snapshot.
        public static let compacted = Code(.compacted)
        /// The resource is in use (for example the RocksDB lock is held by another process).
        public static let busy = Code(.busy)
        /// An unexpected failure inside a library (for example an LZ4 context could not be created).
        public static let `internal` = Code(.internal)

        public var description: String {
            switch self.wrapped {
            case .io: return "io"
            case .corruption: return "corruption"
            case .notFound: return "notFound"
            case .invalidArgument: return "invalidArgument"
            case .closed: return "closed"
            case .compacted: return "compacted"
            case .busy: return "busy"
            case .internal: return "internal"
            }
        }
    }

    /// The category of the error; stable, meant for branching.
    public var code: Code
    /// A human-readable explanation; meant for logs.
    public var message: String

    /// Creates an error with a code and a message.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String {
        "\(self.code): \(self.message)"
    }
}

extension StorageError {
    static func io(_ message: String) -> StorageError { StorageError(code: .io, message: message) }
    static func corruption(_ message: String) -> StorageError { StorageError(code: .corruption, message: message) }
    static func notFound(_ message: String) -> StorageError { StorageError(code: .notFound, message: message) }
    static func invalidArgument(_ message: String) -> StorageError {
        StorageError(code: .invalidArgument, message: message)
    }
    static func closed(_ message: String) -> StorageError { StorageError(code: .closed, message: message) }
    static func compacted(_ message: String) -> StorageError { StorageError(code: .compacted, message: message) }
    static func `internal`(_ message: String) -> StorageError { StorageError(code: .internal, message: message) }
}
