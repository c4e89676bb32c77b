import BifrostWire
import NIOCore
import PropertyBased
import Testing

enum Color: String, WireCodable, Codable, Equatable, Sendable {
    case red, green, blue
}

enum Level: UInt16, WireCodable, Equatable {
    case low = 1
    case high = 500
}

let unicodeString = Gen.uint32(in: 0...0x10FFFF).array(of: 0...24).map { scalars in
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars.compactMap(Unicode.Scalar.init))
    return String(view)
}

@Suite("Native codec")
struct NativeCodecTests {
    @Test("appendVarint appends the bytes writeVarint writes")
    func appendVarintMatchesWriter() {
        var values: [UInt64] = [0, 1, 127, 128, 300, 16_383, 16_384, UInt64(UInt32.max), UInt64.max - 1, UInt64.max]
        values += (0..<64).map { UInt64(1) << $0 } + (1..<64).map { (UInt64(1) << $0) - 1 }
        for value in values {
            var bytes: [UInt8] = [0xAA]
            Wire.appendVarint(value, to: &bytes)
            #expect(bytes == [0xAA] + Wire.encodeToBytes(value), "value \(value)")
        }
    }

    @Test("known vectors pin the format")
    func knownVectors() {
        #expect(Wire.encodeToBytes(UInt64(0)) == [0x00])
        #expect(Wire.encodeToBytes(UInt64(127)) == [0x7F])
        #expect(Wire.encodeToBytes(UInt64(128)) == [0x80, 0x01])
        #expect(Wire.encodeToBytes(UInt32(300)) == [0xAC, 0x02])
        #expect(Wire.encodeToBytes(UInt64.max) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(Wire.encodeToBytes(Int(0)) == [0x00])
        #expect(Wire.encodeToBytes(Int(-1)) == [0x01])
        #expect(Wire.encodeToBytes(Int(1)) == [0x02])
        #expect(Wire.encodeToBytes(Int64.min) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(Wire.encodeToBytes(UInt8(200)) == [200])
        #expect(Wire.encodeToBytes(Int8(-1)) == [0xFF])
        #expect(Wire.encodeToBytes(true) == [1])
        #expect(Wire.encodeToBytes(1.0) == [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
        #expect(Wire.encodeToBytes(Float(1.0)) == [0, 0, 0x80, 0x3F])
        #expect(Wire.encodeToBytes("hé") == [3, 0x68, 0xC3, 0xA9])
        #expect(Wire.encodeToBytes([UInt8]([9, 8])) == [2, 9, 8])
        #expect(Wire.encodeToBytes(ByteBuffer(bytes: [9, 8])) == [2, 9, 8])
        #expect(Wire.encodeToBytes(Int?.none) == [0])
        #expect(Wire.encodeToBytes(Int?.some(1)) == [1, 2])
        #expect(Wire.encodeToBytes([UInt16(1), 300]) == [2, 1, 0xAC, 0x02])
        #expect(Wire.encodeToBytes(["b": 1, "a": 2]) == [2, 1, 0x61, 4, 1, 0x62, 2])
        #expect(Wire.encodeToBytes(Set([UInt64(300), 1])) == [2, 1, 0xAC, 0x02])
        #expect(Wire.encodeToBytes(Color.green) == [5] + Array("green".utf8))
        #expect(Wire.encodeToBytes(Level.high) == [0xF4, 0x03])
    }

    @Test("unsigned integers round-trip")
    func unsignedIntegers() async {
        await propertyCheck(count: 300, input: Gen.uint64()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.uint32()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.uint16()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.uint8()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.uint()) { checkNative($0) }
        for edge: UInt64 in [0, 1, 127, 128, 16383, 16384, UInt64(UInt32.max), .max - 1, .max] { checkNative(edge) }
    }

    @Test("signed integers round-trip")
    func signedIntegers() async {
        await propertyCheck(count: 300, input: Gen.int64()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.int32()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.int16()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.int8()) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.int()) { checkNative($0) }
        for edge: Int64 in [0, -1, 1, -64, 63, 64, -65, .min, .max, .min + 1] { checkNative(edge) }
    }

    @Test("narrow integers reject wide values")
    func narrowOverflow() {
        let big = Wire.encodeToBytes(UInt64(70_000))
        #expect(throws: WireError.self) { try Wire.decode(UInt16.self, fromBytes: big) }
        let negative = Wire.encodeToBytes(Int64(-40_000))
        #expect(throws: WireError.self) { try Wire.decode(Int16.self, fromBytes: negative) }
        #expect(throws: WireError.self) { try Wire.decode(UInt8.self, fromBytes: [UInt8]()) }
    }

    @Test("floating point round-trips bit for bit, and NaN is canonical")
    func floatingPoint() async throws {
        await propertyCheck(count: 300, input: Gen.double(in: -1e300...1e300)) { checkNative($0) }
        await propertyCheck(count: 300, input: Gen.float(in: -1e30...1e30)) { checkNative($0) }
        for edge in [0.0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude] {
            checkNative(edge)
        }
        #expect(Wire.encodeToBytes(-0.0) != Wire.encodeToBytes(0.0))
        let signalling = Double(bitPattern: 0x7FF0_0000_0000_0001)
        #expect(Wire.encodeToBytes(signalling) == Wire.encodeToBytes(Double.nan))
        #expect(Wire.encodeToBytes(-Float.nan) == Wire.encodeToBytes(Float.nan))
        #expect(try Wire.decode(Double.self, fromBytes: Wire.encodeToBytes(Double.nan)).isNaN)
    }

    @Test("Bool accepts only 0 and 1")
    func bools() throws {
        checkNative(true)
        checkNative(false)
        #expect(throws: WireError.self) { try Wire.decode(Bool.self, fromBytes: [2]) }
    }

    @Test("strings round-trip, including every Unicode plane")
    func strings() async {
        await propertyCheck(count: 300, input: unicodeString) { checkNative($0) }
        checkNative("")
        checkNative("👩‍👩‍👧 e\u{301}")
    }

    @Test("byte strings round-trip as arrays and buffers with the same bytes")
    func byteStrings() async {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...300)) { bytes in
            checkNative(bytes)
            checkNative(ByteBuffer(bytes: bytes))
            #expect(Wire.encodeToBytes(bytes) == Wire.encodeToBytes(ByteBuffer(bytes: bytes)))
        }
    }

    @Test("optionals, arrays, dictionaries and sets round-trip")
    func collections() async {
        await propertyCheck(count: 200, input: Gen.int64().optional()) { checkNative($0) }
        await propertyCheck(count: 200, input: unicodeString.optional().array(of: 0...8)) { checkNative($0) }
        await propertyCheck(count: 100, input: Gen.int16().array(of: 0...8).array(of: 0...5)) { checkNative($0) }
        await propertyCheck(count: 200, input: unicodeString.array(of: 0...12), Gen.uint64().array(of: 12)) {
            keys, values in
            var dictionary: [String: UInt64] = [:]
            for (key, value) in zip(keys, values) { dictionary[key] = value }
            checkNative(dictionary)
            checkNative(Set(keys))
        }
        checkNative([Int: [String: Bool]]())
        checkNative([1: ["x": true, "y": false], -5: [:]])
    }

    @Test("enums with raw values round-trip and reject unknown raw values")
    func rawEnums() throws {
        for color in [Color.red, .green, .blue] { checkNative(color) }
        checkNative(Level.low)
        checkNative(Level.high)
        #expect(throws: WireError.self) { try Wire.decode(Color.self, fromBytes: Wire.encodeToBytes("purple")) }
        #expect(throws: WireError.self) { try Wire.decode(Level.self, fromBytes: Wire.encodeToBytes(UInt16(2))) }
    }
}
