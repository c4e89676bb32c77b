import NIOCore

/// Splits the bytes a connection reads into ``RPCFrame``s, inside the connection's own handler.
///
/// It does the work of `ByteToMessageHandler(RPCFrameDecoder(...))` without a second pipeline stage: that
/// generic handler is not specialized for our decoder, so it looked up generic metadata for every frame, and
/// every frame then crossed the pipeline boxed in an `NIOAny`. Payloads are slices of the bytes read (no copy).
///
/// Event-loop confined: used only by the channel handler that owns it.
struct FrameReader {
    private var buffered: ByteBuffer?
    /// The largest frame body accepted, in bytes.
    let maxFrameSize: Int

    init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// Adds bytes read from the connection.
    mutating func append(_ bytes: ByteBuffer) {
        guard var existing = buffered, existing.readableBytes > 0 else {
            buffered = bytes
            return
        }
        buffered = nil  // unique again unless frames handed out still share the storage
        // A connection whose reads keep ending mid-frame would otherwise grow the storage by every frame read.
        if existing.readerIndex >= 65_536 { existing.discardReadBytes() }
        var incoming = bytes
        existing.writeBuffer(&incoming)
        buffered = existing
    }

    /// The next complete frame, or nil when more bytes are needed.
    ///
    /// - Throws: ``RPCError/Code/resourceExhausted`` for a length prefix above ``maxFrameSize`` (as soon as the
    ///   prefix arrives, before the body is buffered), ``RPCError/Code/protocolViolation`` for an empty frame or
    ///   a malformed body. The connection must close then.
    mutating func next() throws(RPCError) -> RPCFrame? {
        guard var buffer = buffered else { return nil }
        buffered = nil
        defer { if buffer.readableBytes > 0 { buffered = buffer } }
        return try RPCFrame.split(from: &buffer, maxFrameSize: maxFrameSize)
    }

    /// Whether part of a frame is buffered (a connection that ends now ends mid-frame).
    var hasPartialFrame: Bool { (buffered?.readableBytes ?? 0) > 0 }

    /// The capacity of the buffer holding a partial frame (for tests of its growth).
    var bufferedCapacity: Int { buffered?.capacity ?? 0 }
}
