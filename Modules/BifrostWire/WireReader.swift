import NIOCore

/// Reads values in Bifrost's wire format from a `ByteBuffer`, enforcing ``WireLimits``.
///
/// A reader is a value: copying it forks the read position. Every read either returns a value and advances, or
/// throws a ``WireError``; it never traps on malformed input.
public struct WireReader {
    /// The unread bytes.
    public var buffer: ByteBuffer
    /// The limits every length, count and nesting level is checked against.
    public let limits: WireLimits
    @usableFromInline var depth: Int = 0

    /// Creates a reader over the readable bytes of `buffer`.
    public init(buffer: ByteBuffer, limits: WireLimits = .default) {
        self.buffer = buffer
        self.limits = limits
    }

    /// Creates a reader over a copy of `bytes`.
    public init<Bytes: Sequence<UInt8>>(bytes: Bytes, limits: WireLimits = .default) {
        self.init(buffer: ByteBuffer(bytes: bytes), limits: limits)
    }

    /// The number of bytes not yet read.
    @inlinable
    public var remaining: Int { buffer.readableBytes }

    /// Whether every byte has been read.
    @inlinable
    public var isAtEnd: Bool { buffer.readableBytes == 0 }

    /// Reads a value using its ``WireDecodable`` conformance, counting one level of nesting.
    @inlinable
    public mutating func read<Value: WireDecodable>(_ type: Value.Type = Value.self) throws(WireError) -> Value {
        depth += 1
        defer { depth -= 1 }
        guard depth <= limits.maxDepth else {
            throw WireError(code: .depthExceeded, message: "nesting deeper than \(limits.maxDepth) at \(Value.self)")
        }
        return try Value(from: &self)
    }

    /// Returns the bytes that `body` consumes from this reader, together with its result. Canonical collections use
    /// it to check that keys arrive in strictly increasing byte order.
    @inlinable
    public mutating func capturingBytes<T>(
        _ body: (inout WireReader) throws(WireError) -> T
    ) throws(WireError) -> (value: T, bytes: ByteBuffer) {
        let before = buffer
        let value = try body(&self)
        let consumed = before.readableBytes - buffer.readableBytes
        guard let bytes = before.getSlice(at: before.readerIndex, length: consumed) else {
            throw WireError(code: .invalidValue, message: "internal: a value consumed \(consumed) bytes")
        }
        return (value, bytes)
    }

    /// Throws unless every byte has been consumed. Top-level decoding calls this, so a value never silently
    /// ignores trailing garbage.
    public func expectEnd(of type: Any.Type) throws(WireError) {
        if buffer.readableBytes != 0 {
            throw WireError(
                code: .trailingBytes,
                message: "\(buffer.readableBytes) bytes remain after a complete \(type)"
            )
        }
    }

    /// Reads one raw byte.
    @inlinable
    public mutating func readByte() throws(WireError) -> UInt8 {
        guard let byte = buffer.readInteger(as: UInt8.self) else { throw .truncated("a byte") }
        return byte
    }

    /// Reads an unsigned LEB128 varint, rejecting encodings longer than 64 bits and overlong (non-shortest) forms.
    @inlinable
    public mutating func readVarint() throws(WireError) -> UInt64 {
        // Fast path: one byte.
        if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first < 0x80 {
            buffer.moveReaderIndex(forwardBy: 1)
            return UInt64(first)
        }
        let result: (value: UInt64, length: Int, error: WireError.Code?) = buffer.withUnsafeReadableBytes { bytes in
            Self.parseVarint(bytes, at: 0)
        }
        if let code = result.error { throw Self.varintError(code) }
        buffer.moveReaderIndex(forwardBy: result.length)
        return result.value
    }

    /// Reads an unsigned LEB128 varint from `bytes` at `offset` and moves `offset` past it, with the checks of
    /// ``readVarint()``. For decoders that work on raw bytes rather than a `ByteBuffer`.
    @inlinable
    public static func readVarint(from bytes: UnsafeRawBufferPointer, at offset: inout Int) throws(WireError) -> UInt64
    {
        let result = parseVarint(bytes, at: offset)
        if let code = result.error { throw varintError(code) }
        offset += result.length
        return result.value
    }

    /// The varint at `start` of `bytes`: its value and length, or why it is invalid.
    @inlinable
    static func parseVarint(
        _ bytes: UnsafeRawBufferPointer, at start: Int
    ) -> (value: UInt64, length: Int, error: WireError.Code?) {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var i = start
        while i < bytes.count {
            let byte = bytes[i]
            i += 1
            if shift == 63 && byte > 1 { return (0, 0, .overflow) }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 {
                if byte == 0 && i > start + 1 { return (0, 0, .nonCanonical) }
                return (value, i - start, nil)
            }
            shift += 7
            if shift > 63 { return (0, 0, .overflow) }
        }
        return (0, 0, .truncated)
    }

    @inlinable
    static func varintError(_ code: WireError.Code) -> WireError {
        switch code {
        case .truncated: .truncated("a varint")
        case .overflow: WireError(code: .overflow, message: "varint longer than 64 bits")
        default: WireError(code: .nonCanonical, message: "varint with a redundant trailing zero group")
        }
    }

    /// Reads a zigzag-mapped signed varint.
    @inlinable
    public mutating func readZigZag() throws(WireError) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// Reads a byte-string length and checks it against ``WireLimits/maxBytesLength`` and the bytes remaining.
    @inlinable
    public mutating func readLength(of what: @autoclosure () -> String = "a byte string") throws(WireError) -> Int {
        let raw = try readVarint()
        guard raw <= UInt64(limits.maxBytesLength) else {
            throw WireError(
                code: .limitExceeded,
                message: "\(what()) of \(raw) bytes exceeds the limit of \(limits.maxBytesLength)"
            )
        }
        let length = Int(raw)
        guard length <= buffer.readableBytes else { throw .truncated("\(what()) of \(length) bytes") }
        return length
    }

    /// Reads a collection element count and checks it against ``WireLimits/maxCollectionCount``.
    ///
    /// The count is *not* trusted for allocation: callers reserve at most `min(count, remaining)` elements.
    @inlinable
    public mutating func readCount(of what: @autoclosure () -> String = "a collection") throws(WireError) -> Int {
        let raw = try readVarint()
        guard raw <= UInt64(limits.maxCollectionCount) else {
            throw WireError(
                code: .limitExceeded,
                message: "\(what()) of \(raw) elements exceeds the limit of \(limits.maxCollectionCount)"
            )
        }
        return Int(raw)
    }

    /// Reads `length` raw bytes as a slice that shares storage with the input (no copy).
    @inlinable
    public mutating func readSlice(length: Int) throws(WireError) -> ByteBuffer {
        guard length >= 0, let slice = buffer.readSlice(length: length) else {
            throw .truncated("\(length) raw bytes")
        }
        return slice
    }

    /// Reads a byte string (varint length, then bytes) as a slice that shares storage with the input.
    @inlinable
    public mutating func readLengthPrefixedSlice() throws(WireError) -> ByteBuffer {
        let length = try readLength()
        return try readSlice(length: length)
    }

    /// Reads a byte string (varint length, then bytes) into a new array.
    @inlinable
    public mutating func readLengthPrefixedBytes() throws(WireError) -> [UInt8] {
        let length = try readLength()
        guard let bytes = buffer.readBytes(length: length) else { throw .truncated("a byte string") }
        return bytes
    }
}
