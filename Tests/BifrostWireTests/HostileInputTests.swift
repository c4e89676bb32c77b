import BifrostWire
import NIOCore
import Testing

/// Recursive types whose nesting depth is controlled by the input.
indirect enum Tree: WireCodable, Equatable {
    case leaf
    case node(Tree)

    func encode(to writer: inout WireWriter) {
        switch self {
        case .leaf: writer.writeByte(0)
        case .node(let child):
            writer.writeByte(1)
            writer.write(child)
        }
    }

    init(from reader: inout WireReader) throws(WireError) {
        switch try reader.readByte() {
        case 0: self = .leaf
        case 1: self = .node(try reader.read(Tree.self))
        case let tag: throw WireError(code: .invalidValue, message: "tree tag \(tag)")
        }
    }
}

struct Nest: Codable, Equatable {
    var inner: [Nest]
}

@Suite("Hostile input")
struct HostileInputTests {
    @Test("random bytes decode to a value or a WireError, and anything decoded re-encodes to the same bytes")
    func randomBytes() throws {
        var generator = SplitMix64(seed: 0xB1F7)
        var decodedCount = 0
        for _ in 0..<4000 {
            let length = Int(generator.next() % 40)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            decodedCount += probe(bytes, as: UInt64.self)
            decodedCount += probe(bytes, as: Int32.self)
            decodedCount += probe(bytes, as: String.self)
            decodedCount += probe(bytes, as: [UInt8].self)
            decodedCount += probe(bytes, as: [Int16].self)
            decodedCount += probe(bytes, as: [String: UInt64].self)
            decodedCount += probe(bytes, as: Set<String>.self)
            decodedCount += probe(bytes, as: [Bool?].self)
            decodedCount += probe(bytes, as: Double.self)
            decodedCount += probe(bytes, as: Tree.self)
            decodedCount += probeCodable(bytes, as: SetCommand.self)
            decodedCount += probeCodable(bytes, as: Envelope.self)
            decodedCount += probeCodable(bytes, as: Expr.self)
            decodedCount += probeCodable(bytes, as: Pair.self)
        }
        #expect(decodedCount > 100, "the fuzzer should hit some valid encodings too")
    }

    /// Mutating valid encodings finds far more interesting inputs than uniform noise.
    @Test("mutated valid encodings never crash the decoder")
    func mutatedEncodings() throws {
        var generator = SplitMix64(seed: 7)
        let seed = try WireEncoder().encodeToBytes(CodableBridgeTests.sample)
        for _ in 0..<3000 {
            var bytes = seed
            for _ in 0..<(1 + generator.next() % 4) {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                }
            }
            _ = probeCodable(bytes, as: Envelope.self)
        }
    }

    @Test("every cut of every encoding fails cleanly")
    func everyCut() throws {
        let encoded = try WireEncoder().encodeToBytes(CodableBridgeTests.sample)
        #expect(encoded.count > 400)
        for cut in 0..<encoded.count {
            #expect(throws: WireError.self) { try WireDecoder().decode(Envelope.self, fromBytes: encoded[0..<cut]) }
        }
    }

    @Test("oversized lengths and counts are refused before allocating")
    func oversized() {
        let huge: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
        #expect(errorCode([UInt8].self, huge + [1, 2]) == .limitExceeded)
        #expect(errorCode(String.self, huge) == .limitExceeded)
        #expect(errorCode([UInt64].self, huge) == .limitExceeded)
        #expect(errorCode([String: String].self, huge) == .limitExceeded)
        // Within the limits but beyond the bytes present.
        #expect(errorCode([UInt8].self, [0x80, 0x80, 0x01, 1, 2]) == .truncated)
        #expect(errorCode([UInt64].self, [0x80, 0x80, 0x80, 0x01, 1, 2]) == .truncated)
        let tight = WireLimits(maxBytesLength: 4, maxCollectionCount: 2, maxDepth: 8)
        #expect(throws: WireError.self) { try Wire.decode([UInt8].self, fromBytes: [5, 1, 2, 3, 4, 5], limits: tight) }
        #expect(throws: WireError.self) { try Wire.decode([Bool].self, fromBytes: [3, 1, 1, 1], limits: tight) }
        #expect((try? Wire.decode([Bool].self, fromBytes: [2, 1, 0], limits: tight)) == [true, false])
    }

    @Test("nesting deeper than the limit is refused, natively and through Codable")
    func deepNesting() throws {
        let deep = [UInt8](repeating: 1, count: 100_000) + [0]
        #expect(errorCode(Tree.self, deep) == .depthExceeded)
        let shallow: [UInt8] = [1, 1, 1, 0]
        #expect(try Wire.decode(Tree.self, fromBytes: shallow) == .node(.node(.node(.leaf))))

        // A Codable value nested 40 deep (80 levels: each struct and each array counts) is fine; crafted input
        // nested 5,000 deep is refused.
        var nest = Nest(inner: [])
        for _ in 0..<40 { nest = Nest(inner: [nest]) }
        checkCodable(nest)
        var bytes: [UInt8] = [0]
        // Build from the inside out: {inner: [ {inner: [ ... ]} ]}, 5,000 levels.
        for _ in 0..<5000 {
            let array = [1] + bytes
            let field = [5] + Array("inner".utf8) + varint(array.count) + array
            bytes = varint(field.count) + field
        }
        do {
            _ = try WireDecoder().decode(Nest.self, fromBytes: bytes)
            Issue.record("decoded 5,000 levels")
        } catch {
            #expect(error.code == .depthExceeded)
        }
    }

    private func varint(_ value: Int) -> [UInt8] { Wire.encodeToBytes(UInt64(value)) }

    private func probe<T: WireCodable>(_ bytes: [UInt8], as type: T.Type) -> Int {
        do {
            let value = try Wire.decode(T.self, fromBytes: bytes)
            #expect(Wire.encodeToBytes(value) == bytes, "\(T.self) decoded from \(hex(bytes)) is not canonical")
            return 1
        } catch {
            return 0
        }
    }

    private func probeCodable<T: Codable>(_ bytes: [UInt8], as type: T.Type) -> Int {
        do {
            _ = try WireDecoder().decode(T.self, fromBytes: bytes)
            return 1
        } catch {
            return 0
        }
    }
}
