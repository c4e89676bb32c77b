import BifrostRPC
import NIOCore
import NIOTestUtils
import Testing

@Suite("RPC framing")
struct RPCFrameTests {
    static let frames: [RPCFrame] = [
        .request(id: 1, service: 7, function: 0xDEAD_BEEF, timeoutMicros: 250_000, payload: ByteBuffer(bytes: [1, 2])),
        .request(id: .max, service: .max, function: 0, timeoutMicros: 0, payload: ByteBuffer()),
        .response(id: 2, payload: ByteBuffer(repeating: 0xAB, count: 300)),
        .failure(id: 3, error: RPCError(code: .functionNotFound, message: "no function 9 in service 7")),
        .push(id: 4, payload: ByteBuffer(string: "event")),
        .cancel(id: 5),
        .ping(id: 6),
        .pong(id: 6),
        .goAway,
    ]

    private func encode(_ frames: [RPCFrame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { frame.write(to: &buffer) }
        return buffer
    }

    @Test("every frame kind round-trips through the decoder")
    func roundTrip() throws {
        var buffer = encode(Self.frames)
        var decoder = RPCFrameDecoder()
        var decoded: [RPCFrame] = []
        while let frame = try decoder.decode(buffer: &buffer) { decoded.append(frame) }
        #expect(decoded == Self.frames)
        #expect(buffer.readableBytes == 0)
    }

    @Test("the decoder handles any split of the stream (ByteToMessageDecoderVerifier)")
    func verifier() throws {
        let pairs = Self.frames.map { (encode([$0]), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { RPCFrameDecoder() }
    }

    @Test("every strict prefix of a frame waits for more bytes")
    func prefixesWait() throws {
        let bytes = encode([Self.frames[0]])
        for cut in 0..<bytes.readableBytes {
            var prefix = bytes.getSlice(at: 0, length: cut) ?? ByteBuffer()
            var decoder = RPCFrameDecoder()
            #expect(try decoder.decode(buffer: &prefix) == nil)
        }
    }

    @Test("a length above the limit is refused from its four bytes alone")
    func oversized() {
        var decoder = RPCFrameDecoder(maxFrameSize: 1024)
        var buffer = ByteBuffer(bytes: [0x00, 0x00, 0x04, 0x01])
        do {
            _ = try decoder.decode(buffer: &buffer)
            Issue.record("accepted an oversized frame")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test(
        "malformed frames are protocol violations",
        arguments: [
            [0, 0, 0, 0],  // empty frame
            [0, 0, 0, 2, 99, 0],  // unknown kind
            [0, 0, 0, 3, 3, 1, 4],  // failure without its message
            [0, 0, 0, 4, 5, 1, 0, 0],  // cancel with trailing bytes
            [0, 0, 0, 2, 1, 0x80],  // request id cut inside a varint
            [0, 0, 0, 11, 1] + [UInt8](repeating: 0xFF, count: 10),  // varint overflow
        ] as [[UInt8]])
    func malformed(bytes: [UInt8]) {
        var decoder = RPCFrameDecoder()
        var buffer = ByteBuffer(bytes: bytes)
        do {
            _ = try decoder.decode(buffer: &buffer)
            Issue.record("accepted \(bytes)")
        } catch let error as RPCError {
            #expect(error.code == .protocolViolation)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("random bytes give frames, a wait, or an RPCError; never a crash")
    func randomBytes() {
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for _ in 0..<5000 {
            let length = Int(next() % 24)
            // Small length prefixes, so that bodies are actually parsed.
            var bytes: [UInt8] = [0, 0, 0, UInt8(next() % 20)]
            bytes += (0..<length).map { _ in UInt8(truncatingIfNeeded: next()) }
            var buffer = ByteBuffer(bytes: bytes)
            var decoder = RPCFrameDecoder()
            do {
                while try decoder.decode(buffer: &buffer) != nil {}
            } catch {
                #expect(error is RPCError)
            }
        }
    }

    @Test("unknown error codes from a newer peer still surface as errors")
    func unknownCode() throws {
        var buffer = ByteBuffer(bytes: [0, 0, 0, 5, 3, 9, 200, 1, 0x78])
        var decoder = RPCFrameDecoder()
        let frame = try decoder.decode(buffer: &buffer)
        #expect(frame == .failure(id: 9, error: RPCError(code: .unknown, message: "x")))
    }
}
