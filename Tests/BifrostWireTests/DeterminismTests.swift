import BifrostWire
import NIOCore
import Testing

struct Inventory: Codable, Equatable {
    var owner: String
    var counts: [String: Int]
    var tags: Set<String>
    var nested: [UInt64: [String: Bool]]
}

@Suite("Canonical encoding")
struct DeterminismTests {
    @Test("a dictionary built in different orders encodes identically, natively and through Codable")
    func dictionaryOrder() throws {
        let pairs = (0..<200).map { ("key-\($0 * 7919 % 1000)", $0) }
        var generator = SplitMix64(seed: 42)
        var reference: [UInt8]?
        var referenceCodable: [UInt8]?
        for round in 0..<20 {
            var dictionary: [String: Int] = [:]
            // Different insertion orders and capacities give different iteration orders.
            if round % 2 == 0 { dictionary.reserveCapacity(round * 50) }
            for (key, value) in pairs.shuffled(using: &generator) { dictionary[key] = value }
            let native = Wire.encodeToBytes(dictionary)
            let codable = try WireEncoder().encodeToBytes(dictionary)
            #expect(native == codable, "the Codable bridge must use the native layout")
            if let reference { #expect(native == reference) } else { reference = native }
            let inventory = Inventory(
                owner: "o",
                counts: dictionary,
                tags: Set(pairs.shuffled(using: &generator).map(\.0)),
                nested: [1: ["a": true, "b": false], 2: [:]]
            )
            let bytes = try WireEncoder().encodeToBytes(inventory)
            if let referenceCodable { #expect(bytes == referenceCodable) } else { referenceCodable = bytes }
        }
    }

    @Test("encodings are stable across processes: pinned bytes")
    func pinnedBytes() throws {
        // Hash seeds differ per process, so pinning the bytes here proves the order does not depend on them.
        let inventory = Inventory(
            owner: "z", counts: ["b": 2, "a": 1, "c": -1], tags: ["y", "x"], nested: [7: ["q": true]])
        let bytes = try WireEncoder().encodeToBytes(inventory)
        let expected =
            "34" + "05" + "6f776e6572" + "02017a"  // frame of 0x34 bytes; owner: "z"
            + "06" + "636f756e7473" + "0a" + "03" + "016102" + "016204" + "016301"  // counts: a 1, b 2, c -1
            + "04" + "74616773" + "05" + "02" + "0178" + "0179"  // tags: x, y
            + "06" + "6e6573746564" + "06" + "01" + "07" + "01" + "0171" + "01"  // nested: 7: {q: true}
        #expect(hex(bytes) == expected)
    }

    @Test("decoding rejects non-canonical input")
    func nonCanonical() {
        #expect(errorCode(UInt64.self, [0x80, 0x00]) == .nonCanonical)
        #expect(errorCode([String: Int].self, [2, 1, 0x62, 2, 1, 0x61, 4]) == .nonCanonical)
        #expect(errorCode([String: Int].self, [2, 1, 0x61, 2, 1, 0x61, 4]) == .nonCanonical)
        #expect(errorCode(Set<UInt8>.self, [2, 5, 3]) == .nonCanonical)
        #expect(errorCode(String.self, [2, 0xC3, 0x28]) == .invalidUTF8)
        #expect(errorCode(UInt64.self, [1, 0]) == .trailingBytes)
        #expect(errorCode(Int?.self, [7]) == .invalidValue)
        let tooLong: [UInt8] = Array(repeating: 0xFF, count: 10) + [0x01]
        #expect(errorCode(UInt64.self, tooLong) == .overflow)
        #expect(errorCode(UInt64.self, Array(repeating: 0xFF, count: 9) + [0x02]) == .overflow)
    }
}
