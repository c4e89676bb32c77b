import BifrostRaft
import BifrostRaftCore
import BifrostWire
import NIOCore
import Testing

/// SplitMix64, so that every generated message is reproducible from its seed.
struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
    /// Small, medium and extreme values alike.
    mutating func number() -> UInt64 {
        switch below(4) {
        case 0: below(10)
        case 1: below(1 << 20)
        case 2: UInt64.max - below(3)
        default: next()
        }
    }
    mutating func flag() -> Bool { below(2) == 0 }
    mutating func bytes() -> [UInt8] { (0..<below(40)).map { _ in UInt8(truncatingIfNeeded: next()) } }
    mutating func ids() -> Set<UInt64> { Set((0..<below(6)).map { _ in number() }) }
    mutating func offset() -> Int { Int(below(1 << 40)) }

    mutating func message() -> RaftMessage {
        let body: RaftMessage.Body
        switch below(11) {
        case 0:
            let entries = (0..<below(5)).map { _ in
                Entry(
                    index: number(),
                    term: number(),
                    kind: [.normal, .noop, .configuration][Int(below(3))],
                    payload: bytes()
                )
            }
            body = .append(AppendRequest(prevIndex: number(), prevTerm: number(), entries: entries, commit: number()))
        case 1:
            body = .appendResponse(
                AppendResponse(rejected: flag(), index: number(), hintIndex: number(), hintTerm: number())
            )
        case 2: body = .heartbeat(commit: number(), readSequence: number())
        case 3: body = .heartbeatResponse(readSequence: number())
        case 4:
            body = .vote(VoteRequest(lastIndex: number(), lastTerm: number(), preVote: flag(), transfer: flag()))
        case 5: body = .voteResponse(granted: flag(), preVote: flag())
        case 6:
            let metadata = SnapshotMetadata(
                index: number(),
                term: number(),
                configuration: Configuration(voters: ids(), learners: ids())
            )
            body = .snapshot(SnapshotChunk(metadata: metadata, offset: offset(), data: bytes(), done: flag()))
        case 7: body = .snapshotResponse(snapshotIndex: number(), nextOffset: offset(), rejected: flag())
        case 8: body = .timeoutNow
        case 9: body = .readIndex(context: bytes())
        default: body = .readIndexResponse(context: bytes(), index: number())
        }
        return RaftMessage(from: number(), to: number(), term: number(), body: body)
    }
}

private func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

@Suite("Raft message codec")
struct RaftMessageCodecTests {
    @Test("every kind of message round-trips, and every strict prefix fails to decode")
    func roundTrip() throws {
        var generator = Generator(state: 0x5AF7)
        var kinds = Set<String>()
        for seed in 0..<3000 {
            let message = generator.message()
            kinds.insert(String(describing: message.body).prefix { $0 != "(" }.description)
            let encoded = RaftMessageCodec.encode(message)
            let decoded = try RaftMessageCodec.decode(encoded)
            #expect(decoded == message, "seed \(seed)")
            #expect(bytes(RaftMessageCodec.encode(decoded)) == bytes(encoded), "canonical, seed \(seed)")
            if seed % 10 == 0 {
                for cut in 0..<encoded.readableBytes {
                    let prefix = encoded.getSlice(at: encoded.readerIndex, length: cut) ?? ByteBuffer()
                    #expect(throws: WireError.self, "seed \(seed) cut \(cut)") { try RaftMessageCodec.decode(prefix) }
                }
            }
        }
        #expect(kinds.count == 11)
    }

    @Test("the layout is pinned")
    func pinned() {
        let message = RaftMessage(
            from: 1,
            to: 2,
            term: 300,
            body: .append(
                AppendRequest(
                    prevIndex: 5, prevTerm: 3, entries: [Entry(index: 6, term: 4, payload: [0xAB])], commit: 5)
            )
        )
        #expect(
            bytes(RaftMessageCodec.encode(message)) == [
                1, 2, 0xAC, 0x02,  // from, to, term
                1,  // append
                5, 3, 5,  // prevIndex, prevTerm, commit
                1, 6, 4, 0, 1, 0xAB,  // one entry: index, term, kind, payload
            ]
        )
    }

    @Test("random and mutated bytes decode to a message or a WireError, never a crash")
    func hostileBytes() {
        var generator = Generator(state: 99)
        var decoded = 0
        for _ in 0..<5000 {
            var raw = bytes(RaftMessageCodec.encode(generator.message()))
            for _ in 0..<(1 + generator.below(3)) where !raw.isEmpty {
                let position = Int(generator.below(UInt64(raw.count)))
                raw[position] = UInt8(truncatingIfNeeded: generator.next())
            }
            if let message = try? RaftMessageCodec.decode(ByteBuffer(bytes: raw)) {
                decoded += 1
                #expect(bytes(RaftMessageCodec.encode(message)) == raw, "anything accepted is canonical")
            }
            let noise = (0..<generator.below(30)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = try? RaftMessageCodec.decode(ByteBuffer(bytes: noise))
        }
        #expect(decoded > 0)
    }

    @Test("unknown tags and entry kinds are typed errors")
    func unknownTags() {
        #expect(throws: WireError.self) { try RaftMessageCodec.decode(ByteBuffer(bytes: [1, 2, 3, 99])) }
        #expect(throws: WireError.self) {
            try RaftMessageCodec.decode(ByteBuffer(bytes: [1, 2, 3, 1, 0, 0, 0, 1, 1, 1, 7, 0]))
        }
    }
}
