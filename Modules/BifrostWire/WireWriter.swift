import NIOCore

/// Appends values in Bifrost's wire format to a `ByteBuffer`.
///
/// Writing never fails: every value has an encoding. See `docs/protocol.md` for the format.
public struct WireWriter {
    /// The bytes written so far (from the buffer's reader index to its writer index).
    public var buffer: ByteBuffer

    /// Creates a writer that appends to `buffer`.
    public init(buffer: ByteBuffer) {
        self.buffer = buffer
    }

    /// Creates a writer over a new buffer with room for `capacity` bytes.
    public init(capacity: Int = 64) {
        self.buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Appends `value` using its ``WireEncodable`` conformance.
    @inlinable
    public mutating func write<Value: WireEncodable>(_ value: Value) {
        value.encode(to: &self)
    }

    /// Appends one raw byte.
    @inlinable
    public mutating func writeByte(_ byte: UInt8) {
        buffer.writeInteger(byte)
    }

    /// Appends an unsigned LEB128 varint: seven bits a byte, least significant group first, the high bit set on
    /// every byte but the last. The encoding is always the shortest one.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        if value < 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value))
            return
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 10) { out in
            Wire.storeVarint(value, into: out, at: 0)
        }
    }

    /// Appends a signed integer as a zigzag-mapped varint, so that small magnitudes of either sign stay short.
    @inlinable
    public mutating func writeZigZag(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Appends raw bytes with no length prefix.
    @inlinable
    public mutating func writeRawBytes<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
        buffer.writeBytes(bytes)
    }

    /// Appends a byte string: a varint length, then the bytes.
    @inlinable
    public mutating func writeLengthPrefixed<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        writeVarint(UInt64(bytes.count))
        buffer.writeBytes(bytes)
    }

    /// Appends the readable bytes of `bytes` as a byte string: a varint length, then the bytes.
    @inlinable
    public mutating func writeLengthPrefixed(_ bytes: ByteBuffer) {
        writeVarint(UInt64(bytes.readableBytes))
        var copy = bytes
        buffer.writeBuffer(&copy)
    }
}
