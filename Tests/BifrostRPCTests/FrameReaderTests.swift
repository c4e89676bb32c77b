import NIOCore
import NIOEmbedded
import Testing

@testable import BifrostRPC

/// The frame splitting the connection handlers do inline, and the write batching of their outboxes.
@Suite("RPC frame reader and write batches")
struct FrameReaderTests {
    private func encode(_ frames: [RPCFrame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { frame.write(to: &buffer) }
        return buffer
    }

    private func drain(_ reader: inout FrameReader) throws(RPCError) -> [RPCFrame] {
        var frames: [RPCFrame] = []
        while let frame = try reader.next() { frames.append(frame) }
        return frames
    }

    @Test("any split of a stream of frames into reads gives the same frames", arguments: [1, 2, 3, 7, 64, 1000])
    func anySplit(chunk: Int) throws {
        let frames = RPCFrameTests.frames + RPCFrameTests.frames
        let bytes = encode(frames)
        var reader = FrameReader(maxFrameSize: 1 << 20)
        var decoded: [RPCFrame] = []
        var offset = 0
        while offset < bytes.readableBytes {
            let length = min(chunk, bytes.readableBytes - offset)
            reader.append(bytes.getSlice(at: offset, length: length) ?? ByteBuffer())
            offset += length
            decoded += try drain(&reader)
        }
        #expect(decoded == frames)
        #expect(!reader.hasPartialFrame)
    }

    @Test("a frame cut short stays buffered as a partial frame until the rest arrives")
    func partial() throws {
        let bytes = encode([RPCFrameTests.frames[2]])
        var reader = FrameReader(maxFrameSize: 1 << 20)
        reader.append(bytes.getSlice(at: 0, length: 10) ?? ByteBuffer())
        #expect(try reader.next() == nil)
        #expect(reader.hasPartialFrame)
        reader.append(bytes.getSlice(at: 10, length: bytes.readableBytes - 10) ?? ByteBuffer())
        #expect(try reader.next() == RPCFrameTests.frames[2])
        #expect(!reader.hasPartialFrame)
    }

    @Test("a length above the limit is refused from its prefix alone; an empty frame is a protocol violation")
    func badLengths() {
        var reader = FrameReader(maxFrameSize: 1024)
        reader.append(ByteBuffer(bytes: [0x00, 0x00, 0x04, 0x01]))
        #expect(throws: RPCError.self) { _ = try reader.next() }
        do {
            _ = try reader.next()
        } catch {
            #expect(error.code == .resourceExhausted)
        }
        var empty = FrameReader(maxFrameSize: 1024)
        empty.append(ByteBuffer(bytes: [0, 0, 0, 0]))
        do {
            _ = try empty.next()
            Issue.record("accepted an empty frame")
        } catch {
            #expect(error.code == .protocolViolation)
        }
    }

    @Test("reads that keep ending mid-frame do not grow the buffer by every frame read")
    func boundedBuffer() throws {
        // 3,000 frames of 1,009 bytes (3 MB) in reads of 1,000 fresh bytes each: a read ends on a frame
        // boundary only once every 1,009 reads, so the reader holds a partial frame almost all the time.
        let frame = RPCFrame.response(id: 1, payload: ByteBuffer(repeating: 1, count: 1003))
        let one = encode([frame])
        #expect(one.readableBytes == 1009)
        var stream = ByteBuffer()
        for _ in 0..<3000 { stream.writeImmutableBuffer(one) }
        var reader = FrameReader(maxFrameSize: 1 << 20)
        var count = 0
        var largestCapacity = 0
        while stream.readableBytes > 0 {
            guard let chunk = stream.readSlice(length: min(1000, stream.readableBytes)) else { break }
            reader.append(ByteBuffer(bytes: chunk.readableBytesView))  // its own storage, as a socket read has
            while try reader.next() != nil { count += 1 }
            largestCapacity = max(largestCapacity, reader.bufferedCapacity)
        }
        #expect(count == 3000)
        #expect(largestCapacity < 256 * 1024, "the buffer grew to \(largestCapacity) bytes")
    }

    // MARK: Write batches

    private func clientChannel(writeBatchBytes: Int) throws -> (EmbeddedChannel, RPCClientConnectionHandler) {
        let handler = RPCClientConnectionHandler(
            keepaliveInterval: .seconds(5), keepaliveTimeout: .seconds(5), writeBatchBytes: writeBatchBytes)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler)
    }

    private func startCalls(_ handler: RPCClientConnectionHandler, count: Int) -> [RPCFrame] {
        (1...count).map { index in
            let id = UInt64(index)
            let frame = RPCFrame.request(
                id: id, service: 1, function: 1, timeoutMicros: 0, payload: ByteBuffer(repeating: 7, count: 100))
            handler.start(id: id, frame: frame, box: RPCCallBox(), timeout: nil)
            return frame
        }
    }

    private func writes(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
        var buffers: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { buffers.append(buffer) }
        return buffers
    }

    private func frames(in buffers: [ByteBuffer]) throws -> [RPCFrame] {
        var reader = FrameReader(maxFrameSize: 1 << 20)
        for buffer in buffers { reader.append(buffer) }
        return try drain(&reader)
    }

    @Test("frames of one tick go out in one write at the end of the tick while the batch is not full")
    func oneWritePerTick() throws {
        let (channel, handler) = try clientChannel(writeBatchBytes: 1 << 20)
        let sent = startCalls(handler, count: 10)
        #expect(try writes(channel).isEmpty)  // nothing before the end of the tick
        channel.embeddedEventLoop.run()
        let out = try writes(channel)
        #expect(out.count == 1)
        #expect(try frames(in: out) == sent)
        _ = try channel.finish()
    }

    @Test("a full batch is written at once, before the end of the tick; the rest follows at the end")
    func fullBatchesGoAtOnce() throws {
        // Each request frame is 4 + 1 + 1 + 1 + 1 + 1 + 100 = 109 bytes: a batch of 300 bytes fills every
        // third frame.
        let (channel, handler) = try clientChannel(writeBatchBytes: 300)
        let sent = startCalls(handler, count: 10)
        let early = try writes(channel)
        #expect(early.count == 3)  // frames 1-3, 4-6 and 7-9, written while the tick is still running
        channel.embeddedEventLoop.run()
        let late = try writes(channel)
        #expect(late.count == 1)  // frame 10
        #expect(try frames(in: early + late) == sent)
        _ = try channel.finish()
    }
}
