import NIOCore

extension WireWriter {
    /// The number of bytes the varint encoding of `value` takes.
    @inlinable
    public static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    /// Writes whatever `body` writes, preceded by its byte length as a varint.
    ///
    /// One byte is reserved up front; if the body turns out to need a longer length prefix, the body's bytes are
    /// moved once to make room. Small frames therefore cost no copy at all.
    public mutating func writeFramed<E: Error>(_ body: (inout WireWriter) throws(E) -> Void) throws(E) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt8(0))
        let start = buffer.writerIndex
        try body(&self)
        let length = buffer.writerIndex - start
        if length < 0x80 {
            buffer.setInteger(UInt8(length), at: lengthIndex)
            return
        }
        let size = Self.varintSize(UInt64(length))
        buffer.writeRepeatingByte(0, count: size - 1)
        buffer.withVeryUnsafeMutableBytes { all in
            guard let base = all.baseAddress else { return }
            // copyMemory has memmove semantics, so the overlapping move is safe.
            (base + start + size - 1).copyMemory(from: base + start, byteCount: length)
            Wire.storeVarint(UInt64(length), into: all, at: lengthIndex)
        }
    }
}
