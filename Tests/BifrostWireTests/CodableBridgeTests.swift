import BifrostWire
import NIOCore
import PropertyBased
import Testing

struct SetCommand: Codable, Equatable, Sendable {
    var key: String
    var value: [UInt8]
    var ttl: UInt32?
}

indirect enum Expr: Codable, Equatable, Sendable {
    case literal(Int)
    case name(String)
    case add(Expr, Expr)
    case call(function: String, arguments: [Expr])
    case nothing
}

struct Envelope: Codable, Equatable, Sendable {
    var id: UInt64
    var command: SetCommand
    var commands: [SetCommand]
    var byName: [String: SetCommand]
    var maybe: SetCommand?
    var expr: Expr
    var color: Color
    var pair: Pair
    var scores: [Double]
    var flags: Set<Int8>
    var optionals: [String?]
}

struct Pair: Codable, Equatable, Sendable {
    var first: Int
    var second: Int

    // A hand-written unkeyed encoding, to exercise unkeyed containers.
    init(first: Int, second: Int) {
        self.first = first
        self.second = second
    }
    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        first = try container.decode(Int.self)
        _ = try container.decodeNil()
        second = try container.decode(Int.self)
        #expect(container.isAtEnd)
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(first)
        try container.encodeNil()
        try container.encode(second)
    }
}

/// A class hierarchy, to exercise super encoders and nested containers.
class Animal: Codable, Equatable {
    var name: String
    init(name: String) { self.name = name }
    static func == (lhs: Animal, rhs: Animal) -> Bool {
        type(of: lhs) == type(of: rhs) && lhs.name == rhs.name && (lhs as? Dog)?.tricks == (rhs as? Dog)?.tricks
    }
}

final class Dog: Animal {
    var tricks: [String: [Int]]
    init(name: String, tricks: [String: [Int]]) {
        self.tricks = tricks
        super.init(name: name)
    }
    enum Keys: String, CodingKey { case tricks, extra }
    enum ExtraKeys: String, CodingKey { case a, b }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        tricks = try container.decode([String: [Int]].self, forKey: .tricks)
        let extra = try container.nestedContainer(keyedBy: ExtraKeys.self, forKey: .extra)
        #expect(try extra.decode(Int.self, forKey: .a) == 1)
        var list = try extra.nestedUnkeyedContainer(forKey: .b)
        let inner = try list.nestedContainer(keyedBy: ExtraKeys.self)
        #expect(try inner.decode(String.self, forKey: .a) == "deep")
        _ = inner
        #expect(try list.decode(Bool.self))
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(tricks, forKey: .tricks)
        var extra = container.nestedContainer(keyedBy: ExtraKeys.self, forKey: .extra)
        try extra.encode(1, forKey: .a)
        var list = extra.nestedUnkeyedContainer(forKey: .b)
        var inner = list.nestedContainer(keyedBy: ExtraKeys.self)
        try inner.encode("deep", forKey: .a)
        try list.encode(true)
        try super.encode(to: container.superEncoder())
    }
}

// Schema evolution: version 2 appends optional fields.
struct UserV1: Codable, Equatable {
    var name: String
    var age: Int
}

struct UserV2: Codable, Equatable {
    var name: String
    var age: Int
    var email: String?
    var tags: [String]?
}

struct TeamV1: Codable, Equatable {
    var lead: UserV1
    var members: [UserV1]
}

struct TeamV2: Codable, Equatable {
    var lead: UserV2
    var members: [UserV2]
    var budget: Double?
}

@Suite("Codable bridge")
struct CodableBridgeTests {
    static let sample = Envelope(
        id: 99,
        command: SetCommand(key: "k", value: [1, 2, 3], ttl: nil),
        commands: [SetCommand(key: "a", value: [], ttl: 5), SetCommand(key: "", value: [0], ttl: 0)],
        byName: ["x": SetCommand(key: "x", value: [9], ttl: 1), "w": SetCommand(key: "w", value: [], ttl: nil)],
        maybe: SetCommand(key: "m", value: Array(repeating: 7, count: 300), ttl: 70_000),
        expr: .add(.literal(-3), .call(function: "f", arguments: [.name("x"), .nothing, .literal(1 << 40)])),
        color: .blue,
        pair: Pair(first: -1, second: 2),
        scores: [1.5, -0.0, .infinity],
        flags: [-1, 0, 5],
        optionals: ["a", nil, ""]
    )

    @Test("structs, enums with payloads, nested collections and optionals round-trip")
    func roundTrip() {
        checkCodable(Self.sample)
        var withNil = Self.sample
        withNil.maybe = nil
        checkCodable(withNil)
        checkCodable(Expr.nothing)
        checkCodable(Expr.call(function: "g", arguments: []))
    }

    @Test("random commands round-trip")
    func randomCommands() async {
        let command = Gen.uint32().optional().map { $0 }
        await propertyCheck(count: 200, input: unicodeString, Gen.uint8().array(of: 0...200), command) {
            key, value, ttl in
            checkCodable(SetCommand(key: key, value: value, ttl: ttl))
        }
    }

    @Test("class hierarchies with super encoders and nested containers round-trip")
    func classes() throws {
        let dog = Dog(name: "rex", tricks: ["sit": [1, 2], "roll": []])
        let bytes = try WireEncoder().encodeToBytes(dog)
        let decoded = try WireDecoder().decode(Dog.self, fromBytes: bytes)
        #expect(decoded == dog)
        #expect(try WireEncoder().encodeToBytes(decoded) == bytes)
    }

    @Test("WireCodable values inside Codable types use their native bytes")
    func nativeInsideCodable() throws {
        #expect(try WireEncoder().encodeToBytes([UInt8]([1, 2])) == Wire.encodeToBytes([UInt8]([1, 2])))
        #expect(try WireEncoder().encodeToBytes(Color.red) == Wire.encodeToBytes(Color.red))
        #expect(try WireEncoder().encodeToBytes(Set(["q", "p"])) == Wire.encodeToBytes(Set(["q", "p"])))
        #expect(try WireEncoder().encodeToBytes(Int?.some(3)) == Wire.encodeToBytes(Int?.some(3)))
        let buffer = ByteBuffer(bytes: [4, 5, 6])
        #expect(try WireDecoder().decode(ByteBuffer.self, from: WireEncoder().encode(buffer)) == buffer)
    }

    @Test("appended optional fields: old readers skip them, new readers see nil")
    func schemaEvolution() throws {
        let old = TeamV1(lead: UserV1(name: "ann", age: 40), members: [UserV1(name: "bo", age: 3)])
        let upgraded = try WireDecoder().decode(TeamV2.self, from: WireEncoder().encode(old))
        #expect(upgraded.lead == UserV2(name: "ann", age: 40, email: nil, tags: nil))
        #expect(upgraded.members == [UserV2(name: "bo", age: 3, email: nil, tags: nil)])
        #expect(upgraded.budget == nil)

        let new = TeamV2(
            lead: UserV2(name: "cy", age: 1, email: "c@example.org", tags: ["a"]),
            members: [],
            budget: 2.5
        )
        let downgraded = try WireDecoder().decode(TeamV1.self, from: WireEncoder().encode(new))
        #expect(downgraded == TeamV1(lead: UserV1(name: "cy", age: 1), members: []))
    }

    @Test("a missing required field is a typed error")
    func missingField() throws {
        struct NameOnly: Codable { var name: String }
        let bytes = try WireEncoder().encode(NameOnly(name: "x"))
        do {
            _ = try WireDecoder().decode(UserV1.self, from: bytes)
            Issue.record("decoding succeeded")
        } catch {
            #expect(error.code == .missingField)
        }
    }

    @Test("errors thrown by a type's own Codable code become WireErrors")
    func userErrors() {
        struct Refuses: Codable {
            struct Nope: Error {}
            init() {}
            init(from decoder: any Decoder) throws { throw Nope() }
            func encode(to encoder: any Encoder) throws { throw Nope() }
        }
        #expect(throws: WireError.self) { try WireEncoder().encode(Refuses()) }
        #expect(throws: WireError.self) { try WireDecoder().decode(Refuses.self, fromBytes: [0]) }
    }
}
