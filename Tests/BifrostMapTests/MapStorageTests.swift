import Testing

@testable import BifrostMap

/// The dense storage behind ReplicatedMap: records (key and value in one allocation), the open-addressing table,
/// and String semantics for keys (canonical equivalence and order).
@Suite("ReplicatedMap's dense storage")
struct MapStorageTests {
    static let context = RaftApplyContext(index: 1, term: 1, time: 0, isLeader: true)

    @Test("a record holds its key and value; empty keys and values too")
    func records() {
        let record = MapRecord.make(key: "key", value: [1, 2, 3])
        #expect(record.key == "key" && record.value == [1, 2, 3])
        let empty = MapRecord.make(key: "", value: [])
        #expect(empty.key == "" && empty.value == [])
        withExtendedLifetime((empty, record)) {
            #expect(empty.ref.precedes(record.ref) && !record.ref.precedes(empty.ref))
        }
        // A reference does not own its record: the record must outlive it.
        let twin = MapRecord.make(key: "key", value: [])
        withExtendedLifetime(twin) { #expect(record.ref.hasSameKey(as: twin.ref)) }
        let long = String(repeating: "ü", count: 300)
        #expect(MapRecord.make(key: long, value: Array(repeating: 9, count: 5000)).key == long)
    }

    @Test("the table against a Dictionary: random inserts, replacements and removals (backward-shift deletion)")
    func tableAgainstDictionary() {
        for seed in UInt64(1)...5 {
            var random = SplitMix(state: seed)
            var table = MapTable()
            var reference: [String: [UInt8]] = [:]
            for step in 0..<30_000 {
                let key = "k\(random.next() % 3_000)"
                let value = [UInt8(truncatingIfNeeded: step)]
                switch random.next() % 3 {
                case 0, 1:
                    let record = MapRecord.make(key: key, value: value)
                    if let slot = table.slot(of: key) {
                        #expect(table.record(at: slot)?.value == reference[key], "seed \(seed), step \(step)")
                        table.replace(at: slot, with: record)
                    } else {
                        #expect(reference[key] == nil, "seed \(seed), step \(step)")
                        table.insert(record)
                    }
                    reference[key] = value
                default:
                    if let slot = table.slot(of: key) { table.remove(at: slot) }
                    reference[key] = nil
                }
            }
            #expect(table.count == reference.count, "seed \(seed)")
            for n in 0..<3_000 {
                #expect(table.record(of: "k\(n)")?.value == reference["k\(n)"], "seed \(seed), key k\(n)")
            }
        }
    }

    @Test("an update writes in place while the map alone holds the record, and replaces it while a copy shares it")
    func inPlaceUpdates() throws {
        var map = ReplicatedMap()
        func identity() throws -> ObjectIdentifier {
            ObjectIdentifier(try #require(map.table.record(of: "k")).storage)
        }
        _ = map.set(key: "k", value: [1, 1, 1], context: Self.context)
        let first = try identity()
        #expect(map.set(key: "k", value: [2, 2, 2], context: Self.context) == [1, 1, 1])
        #expect(try identity() == first, "same size, unshared: written in place")
        #expect(map.set(key: "k", value: [3], context: Self.context) == [2, 2, 2])
        #expect(try identity() == first, "smaller: written in place")
        let copy = map
        #expect(map.set(key: "k", value: [4], context: Self.context) == [3])
        let second = try identity()
        #expect(second != first, "shared with a copy: replaced")
        #expect(copy.get(key: "k") == [3] && map.get(key: "k") == [4])
        #expect(map.list(prefix: "", after: nil, limit: 10).entries == [MapEntry(key: "k", value: [4])])
        #expect(copy.list(prefix: "", after: nil, limit: 10).entries == [MapEntry(key: "k", value: [3])])
        withExtendedLifetime(copy) {}
        _ = map.set(key: "k", value: [5], context: Self.context)
        #expect(try identity() == second, "the copy is gone: in place again")
        _ = map.set(key: "k", value: Array(repeating: 6, count: 4096), context: Self.context)
        #expect(try identity() != second, "too large for the allocation: replaced")
        #expect(map.get(key: "k") == Array(repeating: 6, count: 4096))
        #expect(map.list(prefix: "k", after: nil, limit: 10).entries.map(\.value) == [Array(repeating: 6, count: 4096)])
    }

    @Test("a copy of the map is unaffected by later commands (the snapshot works on a copy)")
    func copiesAreIndependent() throws {
        var map = ReplicatedMap()
        for n in 0..<1_000 { _ = map.set(key: "k\(n)", value: [1], context: Self.context) }
        let copy = map
        let image = try copy.snapshot()
        for n in 0..<1_000 where n % 2 == 0 { _ = map.remove(key: "k\(n)", context: Self.context) }
        for n in 0..<1_000 where n % 2 == 1 { _ = map.set(key: "k\(n)", value: [2], context: Self.context) }
        _ = map.set(key: "new", value: [3], context: Self.context)
        #expect(copy.count() == 1_000)
        #expect(copy.get(key: "k0") == [1] && copy.get(key: "k1") == [1] && copy.get(key: "new") == nil)
        #expect(try copy.snapshot() == image)
        #expect(map.count() == 501 && map.get(key: "k1") == [2] && map.get(key: "k0") == nil)
    }

    @Test("keys: canonically equivalent spellings are one key (String's ==), and keys sort by their NFC bytes")
    func unicodeKeys() {
        var map = ReplicatedMap()
        #expect(map.set(key: "caf\u{E9}", value: [1], context: Self.context) == nil)
        // "e" + combining acute is the same String as the precomposed "é".
        #expect(map.set(key: "cafe\u{301}", value: [2], context: Self.context) == [1])
        #expect(map.count() == 1)
        #expect(map.get(key: "caf\u{E9}") == [2] && map.contains(key: "cafe\u{301}"))
        #expect(map.list(prefix: "caf", after: nil, limit: 10).entries.map(\.key) == ["caf\u{E9}"])
        #expect(map.remove(key: "caf\u{E9}", context: Self.context) == [2])
        #expect(map.count() == 0)

        var random = SplitMix(state: 3)
        let alphabet: [String] = [
            "a", "z", "\u{E9}", "e\u{301}", "\u{1F600}", "\u{316}", "\u{212B}", "A\u{30A}", "\u{3B1}",
        ]
        var reference: [String: [UInt8]] = [:]
        for _ in 0..<2_000 {
            let key = (0..<(1 + random.next() % 4)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
                .joined()
            if random.next() % 4 == 0 {
                #expect(map.remove(key: key, context: Self.context) == reference.removeValue(forKey: key))
            } else {
                #expect(map.set(key: key, value: [UInt8(key.utf8.count)], context: Self.context) == reference[key])
                reference[key] = [UInt8(key.utf8.count)]
            }
        }
        #expect(map.count() == UInt64(reference.count))
        let listed = map.list(prefix: "", after: nil, limit: 10_000).entries
        // The order of the NFC bytes, which is String's `<` for NFC strings. (For some non-NFC spellings, `<`
        // disagrees with it: `"aA\u{30A}\u{E9}a" < "a\u{212B}e\u{301}"`, although in NFC the second is a prefix of the first.)
        let nfcOrder = reference.keys.sorted {
            Array($0._nfcCodeUnits).lexicographicallyPrecedes(Array($1._nfcCodeUnits))
        }
        #expect(listed.map(\.key) == nfcOrder)
        let nfcKeys = listed.map(\.key)
        #expect(nfcKeys == nfcKeys.sorted(), "for NFC keys, String's order is the byte order")
        for entry in listed {
            #expect(reference[entry.key] == entry.value)
            #expect(Array(entry.key.utf8) == Array(entry.key._nfcCodeUnits), "keys are listed in NFC form")
        }
    }

    @Test("the ASCII check reads eight bytes at a time and finds a high bit at any position and length")
    func asciiCheck() {
        for length in 0...40 {
            let ascii = (0..<length).map { UInt8(0x20 + $0 % 0x5F) }
            #expect(ascii.withUnsafeBufferPointer(MapKey.isASCII))
            for position in 0..<length {
                for high: UInt8 in [0x80, 0xC3, 0xFF] {
                    var bytes = ascii
                    bytes[position] = high
                    #expect(!bytes.withUnsafeBufferPointer(MapKey.isASCII), "length \(length), position \(position)")
                }
            }
        }
        // Both paths through `withBytes`: an ASCII key as it is, a non-ASCII key in NFC.
        let ascii = "plain-key-of-24-bytes-ok"
        #expect(MapKey.withBytes(of: ascii) { Array($0) } == Array(ascii.utf8))
        #expect(MapKey.withBytes(of: "cafe\u{301}") { Array($0) } == Array("caf\u{E9}".utf8))
    }
}
