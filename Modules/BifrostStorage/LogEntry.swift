/// One entry of a Raft log as stored by ``RaftLogStore``.
///
/// The payload is opaque to the storage layer (the Raft core and the state machine own its meaning).
///
/// ## Binary layout (version 1)
///
/// All integers are big-endian. `n` is the payload length.
///
/// | offset   | size | field                                             |
/// |----------|------|---------------------------------------------------|
/// | 0        | 1    | layout version, `1`                               |
/// | 1        | 8    | index                                             |
/// | 9        | 8    | term                                              |
/// | 17       | 4    | payload length `n`                                |
/// | 21       | n    | payload                                           |
/// | 21 + n   | 4    | CRC-32C of bytes `[0, 21 + n)`                    |
///
/// The encoded size is `25 + n` bytes.
public struct LogEntry: Hashable, Sendable {
    /// The entry's position in the log (the first entry of a fresh log has index 1).
    public var index: UInt64
    /// The leader term in which the entry was created.
    public var term: UInt64
    /// The opaque command bytes.
    public var payload: [UInt8]

    /// Creates an entry.
    public init(index: UInt64, term: UInt64, payload: [UInt8]) {
        self.index = index
        self.term = term
        self.payload = payload
    }

    /// The layout version written by this code.
    public static let layoutVersion: UInt8 = 1
    /// Bytes added to the payload by the encoding (version, index, term, length, CRC).
    public static let encodingOverhead = 25

    /// The size of the encoded entry in bytes.
    public var encodedSize: Int { Self.encodingOverhead + self.payload.count }

    /// Appends the encoded entry to `buffer`.
    ///
    /// - Throws: ``StorageError`` `.invalidArgument` when the payload is larger than `UInt32.max` bytes.
    public func encode(into buffer: inout [UInt8]) throws {
        guard let length = UInt32(exactly: self.payload.count) else {
            throw StorageError.invalidArgument("log entry payload of \(self.payload.count) bytes is too large")
        }
        let start = buffer.count
        buffer.reserveCapacity(start + self.encodedSize)
        buffer.append(Self.layoutVersion)
        buffer.appendBigEndian(self.index)
        buffer.appendBigEndian(self.term)
        buffer.appendBigEndian(length)
        buffer.append(contentsOf: self.payload)
        let crc = buffer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        buffer.appendBigEndian(crc)
    }

    /// The encoded entry.
    public func encoded() throws -> [UInt8] {
        var buffer: [UInt8] = []
        try self.encode(into: &buffer)
        return buffer
    }

    /// Decodes and validates an encoded entry.
    ///
    /// - Throws: ``StorageError`` `.corruption` when the bytes are truncated, have an unknown version, an
    ///   inconsistent length, or a checksum mismatch.
    public init(decoding bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count >= Self.encodingOverhead else {
            throw StorageError.corruption("log entry of \(bytes.count) bytes is shorter than its fixed fields")
        }
        guard bytes[0] == Self.layoutVersion else {
            throw StorageError.corruption("log entry has unknown layout version \(bytes[0])")
        }
        let length = Int(bytes.readBigEndianUInt32(at: 17))
        guard length == bytes.count - Self.encodingOverhead else {
            throw StorageError.corruption(
                "log entry declares a \(length)-byte payload but holds \(bytes.count - Self.encodingOverhead)")
        }
        let stored = bytes.readBigEndianUInt32(at: 21 + length)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(21 + length)]))
        guard stored == computed else {
            throw StorageError.corruption("log entry checksum mismatch (stored \(stored), computed \(computed))")
        }
        self.index = bytes.readBigEndianUInt64(at: 1)
        self.term = bytes.readBigEndianUInt64(at: 9)
        self.payload = Array(UnsafeRawBufferPointer(rebasing: bytes[21..<(21 + length)]))
    }

    /// Decodes and validates an encoded entry.
    public init(decoding bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try LogEntry(decoding: $0) }
    }
}

/// The persistent part of a Raft node's state that must survive restarts.
public struct HardState: Hashable, Sendable {
    /// The latest term the node has seen.
    public var term: UInt64
    /// The candidate voted for in ``term``, if any.
    public var vote: UInt64?
    /// The highest log index known to be committed.
    public var commit: UInt64

    /// Creates a hard state.
    public init(term: UInt64, vote: UInt64?, commit: UInt64) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }

    /// The hard state of a node that has never run.
    public static let initial = HardState(term: 0, vote: nil, commit: 0)
}
