import NIOCore
import NIOEmbedded
import Testing

@testable import BifrostRPC

/// The client's connection handler on an `EmbeddedChannel`: exact control over time and over what arrives.
@Suite("RPC client handler")
struct ClientHandlerTests {
    private func makeChannel() throws -> (EmbeddedChannel, RPCClientConnectionHandler) {
        let handler = RPCClientConnectionHandler(keepaliveInterval: .seconds(5), keepaliveTimeout: .seconds(5))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler)
    }

    private func sentFrames(_ channel: EmbeddedChannel) throws -> [RPCFrame] {
        var frames: [RPCFrame] = []
        var decoder = RPCFrameDecoder()
        while var bytes = try channel.readOutbound(as: ByteBuffer.self) {
            while let frame = try decoder.decode(buffer: &bytes) { frames.append(frame) }
        }
        return frames
    }

    private func result(of box: RPCCallBox) async -> Result<ByteBuffer, RPCError> {
        await withUnsafeContinuation { continuation in _ = box.attach(continuation) }
    }

    @Test("a reply after the deadline is dropped; the deadline sends a cancel")
    func lateReply() async throws {
        let (channel, handler) = try makeChannel()
        let box = RPCCallBox()
        let request = RPCFrame.request(id: 7, service: 1, function: 2, timeoutMicros: 100_000, payload: ByteBuffer())
        handler.start(id: 7, frame: request, box: box, timeout: .milliseconds(100))
        channel.embeddedEventLoop.run()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(101))
        guard case .failure(let error) = await result(of: box) else {
            Issue.record("the call did not time out")
            return
        }
        #expect(error.code == .deadlineExceeded)
        #expect(try sentFrames(channel) == [request, .cancel(id: 7)])

        // The server's reply arrives late: nothing happens, and the box is not resumed twice.
        var late = ByteBuffer()
        RPCFrame.response(id: 7, payload: ByteBuffer(bytes: [1])).write(to: &late)
        try channel.writeInbound(late)
        #expect(box.complete(.success(ByteBuffer())) == false)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test("a stream whose consumer falls behind fails with resourceExhausted and cancels the call")
    func slowConsumer() async throws {
        let (channel, handler) = try makeChannel()
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: ByteBuffer.self,
            bufferingPolicy: .bufferingOldest(3)
        )
        let request = RPCFrame.request(id: 9, service: 1, function: 1, timeoutMicros: 0, payload: ByteBuffer())
        handler.startStream(id: 9, frame: request, continuation: continuation, limit: 3)
        channel.embeddedEventLoop.run()
        // Five pushes arrive before the consumer reads anything.
        for value in 0..<5 {
            var frame = ByteBuffer()
            RPCFrame.push(id: 9, payload: ByteBuffer(bytes: [UInt8(value)])).write(to: &frame)
            try channel.writeInbound(frame)
        }
        channel.embeddedEventLoop.run()
        #expect(try sentFrames(channel) == [request, .cancel(id: 9)])
        var received: [UInt8] = []
        do {
            for try await message in stream { received += Array(message.readableBytesView) }
            Issue.record("the stream ended normally")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
        }
        #expect(received == [0, 1, 2])  // nothing dropped silently: what was buffered, then the error
        _ = try channel.finish()
    }

    @Test("a connection that closes fails every pending call with unavailable")
    func closeFailsPending() async throws {
        let (channel, handler) = try makeChannel()
        let boxes = (1...3).map { _ in RPCCallBox() }
        for (index, box) in boxes.enumerated() {
            let id = UInt64(index + 1)
            handler.start(
                id: id,
                frame: .request(id: id, service: 1, function: 1, timeoutMicros: 0, payload: ByteBuffer()),
                box: box,
                timeout: nil
            )
        }
        _ = try channel.finish()
        for box in boxes {
            guard case .failure(let error) = await result(of: box) else {
                Issue.record("a pending call succeeded")
                continue
            }
            #expect(error.code == .unavailable)
        }
    }

    @Test("an idle connection sends a ping, and closes when the ping goes unanswered")
    func keepalive() throws {
        let (channel, _) = try makeChannel()
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        let frames = try sentFrames(channel)
        #expect(frames.count == 1)
        if case .ping = frames.first {} else { Issue.record("expected a ping, got \(frames)") }
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(!channel.isActive)
    }
}
