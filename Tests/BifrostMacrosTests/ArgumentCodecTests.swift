import BifrostMacros
import BifrostWire
import Testing

/// A `Codable`-only type, as a user's command argument might be.
struct Recipe: Codable, Sendable, Hashable {
    var name: String
    var steps: [String]
    var notes: String?
}

/// One command whose parameters cover every kind of field the generated argument codec handles: native and
/// `Codable` scalars and collections, optionals of both, a `Codable`-only struct and a `WireCodable`-only one.
@StateMachine
struct Kitchen: Codable {
    var meals = 0

    @Command mutating func cook(
        _ name: String, servings: Int, hot: Bool, ratio: Double, tags: [String], stock: [String: Int],
        photo: [UInt8], note: String?, recipe: Recipe, backup: Recipe?, plate: Vector2, spare: Vector2?
    ) -> Int {
        meals += 1
        return meals
    }
}

private typealias Arguments = Kitchen.Client.CookArguments

private let cases: [Arguments] = [
    Arguments(
        name: "soup", servings: 4, hot: true, ratio: 0.5, tags: ["a", "bé"], stock: ["salt": 3, "leek": -2],
        photo: [0, 1, 255], note: "n", recipe: Recipe(name: "r", steps: ["boil"], notes: nil),
        backup: Recipe(name: "b", steps: [], notes: "x"), plate: Vector2(x: -1, y: 7), spare: Vector2(x: 2, y: 3)),
    Arguments(
        name: "", servings: -9_000_000_000, hot: false, ratio: -0.0, tags: [], stock: [:], photo: [], note: nil,
        recipe: Recipe(name: "", steps: [], notes: nil), backup: nil, plate: Vector2(x: 0, y: 0), spare: nil),
    Arguments(
        name: String(repeating: "long ", count: 100), servings: .max, hot: true, ratio: .infinity,
        tags: Array(repeating: "t", count: 200), stock: ["k": .min], photo: Array(repeating: 9, count: 300),
        note: "", recipe: Recipe(name: "x", steps: ["1", "2"], notes: ""), backup: nil,
        plate: Vector2(x: .max, y: .min), spare: nil),
]

@Suite("@StateMachine argument codec")
struct ArgumentCodecTests {
    @Test("the native encoding is byte for byte what WireEncoder writes through Codable", arguments: cases.indices)
    func sameBytes(index: Int) throws {
        let arguments = cases[index]
        let native = try arguments.wireArgument(function: "cook")
        let bridged = try WireEncoder().encodeToBytes(arguments)
        #expect(native == bridged)
    }

    @Test("each path decodes what the other wrote", arguments: cases.indices)
    func crossDecoding(index: Int) throws {
        let arguments = cases[index]
        let bytes = try arguments.wireArgument(function: "cook")
        let native = try Arguments.fromWire(bytes, function: "cook")
        #expect(try native.wireArgument(function: "cook") == bytes)
        let bridged = try WireDecoder().decode(Arguments.self, fromBytes: bytes)
        #expect(try WireEncoder().encodeToBytes(bridged) == bytes)
    }

    /// A keyed frame with the given fields, in the given order.
    private func frame(_ fields: [(String, [UInt8])]) -> [UInt8] {
        var body = WireWriter()
        for (name, value) in fields {
            body.write(name)
            body.writeLengthPrefixed(value)
        }
        var writer = WireWriter()
        writer.writeLengthPrefixed(body.buffer)
        return Array(writer.buffer.readableBytesView)
    }

    /// The fields of `arguments` as the bridge writes them, by name.
    fileprivate func fields(of arguments: Arguments) throws -> [(String, [UInt8])] {
        let bytes = try WireEncoder().encodeToBytes(arguments)
        var reader = WireReader(bytes: bytes)
        var frame = WireReader(buffer: try reader.readLengthPrefixedSlice())
        var fields: [(String, [UInt8])] = []
        while !frame.isAtEnd {
            let name = try frame.read(String.self)
            fields.append((name, try frame.readLengthPrefixedBytes()))
        }
        return fields
    }

    @Test("fields in any order, and unknown fields, decode as the bridge decodes them")
    func orderAndUnknownFields() throws {
        let arguments = cases[0]
        let expected = try arguments.wireArgument(function: "cook")
        let shuffled = frame(try fields(of: arguments).reversed() + [("added.in.v2", [1, 2, 3])])
        let native = try Arguments.fromWire(shuffled, function: "cook")
        #expect(try native.wireArgument(function: "cook") == expected)
        let bridged = try WireDecoder().decode(Arguments.self, fromBytes: shuffled)
        #expect(try WireEncoder().encodeToBytes(bridged) == expected)
    }

    @Test(
        "a missing optional field is nil; a missing required field, a repeated field or trailing bytes are badArgument")
    func malformed() throws {
        let all = try fields(of: cases[0])
        let withoutNote = frame(all.filter { $0.0 != "note" })
        #expect(try Arguments.fromWire(withoutNote, function: "cook").note == nil)

        let withoutName = frame(all.filter { $0.0 != "name" })
        let repeated = frame(all + [all[0]])
        let trailing = frame(all) + [0]
        let wrongType = frame(all.map { $0.0 == "hot" ? ($0.0, [7]) : $0 })
        // Strings and byte strings are read in place: their own lengths and UTF-8 are checked there.
        let badUTF8 = frame(all.map { $0.0 == "name" ? ($0.0, [2, 0xC3, 0x28]) : $0 })
        let shortBytes = frame(all.map { $0.0 == "photo" ? ($0.0, [5, 1, 2]) : $0 })
        let longBytes = frame(all.map { $0.0 == "photo" ? ($0.0, [1, 1, 2]) : $0 })
        let cut = Array(frame(all).dropLast())
        for bad in [withoutName, repeated, trailing, wrongType, badUTF8, shortBytes, longBytes, cut, [], [0xFF]] {
            do {
                _ = try Arguments.fromWire(bad, function: "cook")
                Issue.record("decoded \(bad.prefix(16))")
            } catch {
                #expect(error.code == .badArgument)
            }
        }
    }

    @Test("native results are the bridge's bytes")
    func results() throws {
        let optional: [UInt8]? = [1, 2]
        let none: [UInt8]? = nil
        let map = ["b": 1, "a": 2]
        #expect(try StateMachineSupport.encodeResult(optional, function: "f") == WireEncoder().encodeToBytes(optional))
        #expect(try StateMachineSupport.encodeResult(none, function: "f") == WireEncoder().encodeToBytes(none))
        #expect(try StateMachineSupport.encodeResult(map, function: "f") == WireEncoder().encodeToBytes(map))
        #expect(try StateMachineSupport.encodeResult("é", function: "f") == WireEncoder().encodeToBytes("é"))
        // Byte strings take their own path: long enough for a two-byte length, optional or not, empty or not.
        let long = [UInt8](repeating: 7, count: 300)
        for value in [long, [], [9]] {
            #expect(try StateMachineSupport.encodeResult(value, function: "f") == WireEncoder().encodeToBytes(value))
            let wrapped: [UInt8]? = value
            #expect(
                try StateMachineSupport.encodeResult(wrapped, function: "f") == WireEncoder().encodeToBytes(wrapped))
        }
        let bytes = try WireEncoder().encodeToBytes(map)
        #expect(try StateMachineSupport.decodeResult([String: Int].self, from: bytes, function: "f") == map)
    }
}
