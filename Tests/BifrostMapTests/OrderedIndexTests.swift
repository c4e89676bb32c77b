import Testing

@testable import BifrostMap

/// A deterministic generator (SplitMix64), so that failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("ReplicatedMap's ordered index and image format")
struct OrderedIndexTests {
    static let context = RaftApplyContext(index: 1, term: 1, time: 0, isLeader: true)

    @Test("SortedKeys stays sorted through splits and merges, against a reference set")
    func sortedKeys() {
        var random = SplitMix(state: 7)
        var keys = SortedKeys<String>()
        var reference = Set<String>()
        for step in 0..<40_000 {
            let key = "k\(random.next() % 6_000)"
            // Mostly inserts first, then mostly removals, so that chunks split and then merge.
            let inserting = random.next() % 100 < (step < 20_000 ? 80 : 20)
            if inserting, !reference.contains(key) {
                keys.insert(key)
                reference.insert(key)
            } else if !inserting {
                #expect(keys.remove(key) == (reference.remove(key) != nil))
            }
        }
        #expect(keys.count == reference.count)
        #expect(Array(keys.all) == reference.sorted())
        #expect(keys.chunks.allSatisfy { !$0.isEmpty && $0.count <= SortedKeys<String>.maxChunk })
        #expect(keys.chunks.count > 1)
        #expect(keys.lasts == keys.chunks.compactMap(\.last))
        // Positions: first >= and first > a key, present or absent.
        let sorted = reference.sorted()
        for probe in ["", "k", "k1", "k3000", "k5999", "k6", "z"] {
            let atLeast = sorted.firstIndex { $0 >= probe }.map { sorted[$0] }
            let above = sorted.firstIndex { $0 > probe }.map { sorted[$0] }
            let p = keys.position(of: probe)
            let q = keys.position(of: probe, strictly: true)
            #expect((p == keys.endPosition ? nil : keys[p]) == atLeast)
            #expect((q == keys.endPosition ? nil : keys[q]) == above)
        }
        // Keys inserted in increasing order fill their chunks; a key inside a full chunk splits it.
        var ascending = SortedKeys<String>()
        let increasing = (0..<3_000).map { "a\($0)" }.sorted()
        for name in increasing { ascending.insert(name) }
        #expect(ascending.chunks.dropLast().allSatisfy { $0.count == SortedKeys<String>.maxChunk })
        ascending.insert("a")
        #expect(Array(ascending.all) == ["a"] + increasing)
        #expect(ascending.chunks.allSatisfy { !$0.isEmpty && $0.count <= SortedKeys<String>.maxChunk })
        #expect(ascending.lasts == ascending.chunks.compactMap(\.last))
        // Built from a sorted array: the same keys.
        #expect(Array(SortedKeys(sorted: sorted).all) == sorted)
        keys.removeAll()
        #expect(keys.count == 0 && keys.position(of: "a") == keys.endPosition)
    }

    @Test("list agrees with a filtered, sorted reference after random commands")
    func listAgainstReference() {
        var random = SplitMix(state: 11)
        var map = ReplicatedMap()
        var reference: [String: [UInt8]] = [:]
        let prefixes = ["", "a", "ab", "b/", "b/1", "c"]
        for _ in 0..<5_000 {
            let key = prefixes[Int(random.next() % 6)] + "\(random.next() % 300)"
            switch random.next() % 4 {
            case 0, 1:
                _ = map.set(key: key, value: [1], context: Self.context)
                reference[key] = [1]
            case 2:
                _ = map.remove(key: key, context: Self.context)
                reference[key] = nil
            default:
                _ = map.compareAndSwap(key: key, expected: reference[key], new: nil, context: Self.context)
                reference[key] = nil
            }
        }
        #expect(map.count() == UInt64(reference.count))
        for prefix in prefixes + ["b", "a1", "zz"] {
            let expected = reference.keys.filter { $0.hasPrefix(prefix) }.sorted()
            for limit in [1, 3, 50, 10_000] {
                var seen: [String] = []
                var after: String?
                repeat {
                    let page = map.list(prefix: prefix, after: after, limit: limit)
                    seen += page.entries.map(\.key)
                    after = page.next
                } while after != nil
                #expect(seen == expected, "prefix \(prefix), limit \(limit)")
            }
        }
    }

    @Test("key prefixes order keys as their bytes do, and equal prefixes decide nothing")
    func keyPrefixOrder() {
        var random = SplitMix(state: 23)
        // Short keys, keys with zero bytes, keys that extend others, and keys that share their first 16 bytes.
        let stems: [[UInt8]] = [
            [], [0], [0x61], [0x61, 0], Array(repeating: 0x6B, count: 16), Array(repeating: 0, count: 16),
        ]
        var keys: [[UInt8]] = []
        for _ in 0..<400 {
            var key = stems[Int(random.next() % UInt64(stems.count))]
            for _ in 0..<Int(random.next() % 20) { key.append([0, 1, 0x61, 0xFF][Int(random.next() % 4)]) }
            keys.append(key)
        }
        for a in keys {
            for b in keys {
                a.withUnsafeBufferPointer { left in
                    b.withUnsafeBufferPointer { right in
                        let order = MapKey.compare(left, right)
                        let (p, q) = (MapKey.prefix(of: left), MapKey.prefix(of: right))
                        if p < q { #expect(order < 0, "\(a) \(b)") }
                        if order == 0 { #expect(p == q, "\(a) \(b)") }
                    }
                }
            }
        }
        // The index's elements agree with the bytes' order, through the prefixes or past them.
        let records = keys.map { key in
            key.withUnsafeBufferPointer { bytes in
                [UInt8]().withUnsafeBufferPointer {
                    MapRecord.make(keyBytes: bytes, hash: MapKey.hash(bytes), value: $0)
                }
            }
        }
        for (i, a) in records.enumerated() {
            for (j, b) in records.enumerated() {
                let order = keys[i].withUnsafeBufferPointer { l in
                    keys[j].withUnsafeBufferPointer { MapKey.compare(l, $0) }
                }
                #expect(a.ref.precedes(b.ref) == (order < 0))
                #expect(a.ref.hasSameKey(as: b.ref) == (order == 0))
            }
        }
    }

    @Test("list agrees with a sorted reference for long keys that share their first 16 bytes")
    func longSharedPrefixes() {
        var random = SplitMix(state: 29)
        var map = ReplicatedMap()
        var reference: Set<String> = []
        let stems = ["", "0123456789abcdef", "0123456789abcdefg", "0123456789abcde"]
        for step in 0..<6_000 {
            let key = stems[Int(random.next() % 4)] + "\(random.next() % 2_000)"
            if step < 4_000 || random.next() % 2 == 0 {
                _ = map.set(key: key, value: [], context: Self.context)
                reference.insert(key)
            } else {
                _ = map.remove(key: key, context: Self.context)
                reference.remove(key)
            }
        }
        #expect(map.count() == UInt64(reference.count))
        for prefix in stems + ["0123456789abcdef1", "012"] {
            let expected = reference.filter { $0.hasPrefix(prefix) }.sorted()
            var seen: [String] = []
            var after: String?
            repeat {
                let page = map.list(prefix: prefix, after: after, limit: 97)
                seen += page.entries.map(\.key)
                after = page.next
            } while after != nil
            #expect(seen == expected, "prefix \(prefix)")
        }
        #expect(map.keys.lasts.map(\.key) == map.keys.chunks.compactMap(\.last).map(\.key))
    }

    @Test("a prefix ending in a character that other keys extend with combining marks")
    func combiningMarks() {
        var map = ReplicatedMap()
        // "e\u{316}" starts with the bytes of "e" but not with the character "e"; "e😀" does; both sort after "ez".
        for key in ["e", "ez", "e\u{316}", "e😀", "f"] { _ = map.set(key: key, value: [], context: Self.context) }
        #expect(map.list(prefix: "e", after: nil, limit: 10).entries.map(\.key) == ["e", "ez", "e😀"])
        let first = map.list(prefix: "e", after: nil, limit: 2)
        #expect(first.next == "ez")
        #expect(
            map.list(prefix: "e", after: first.next, limit: 2)
                == MapPage(entries: [MapEntry(key: "e😀", value: [])], next: nil))
    }

    @Test("the image: version, count, sorted pairs; malformed images are corruptSnapshot")
    func imageFormat() throws {
        var map = ReplicatedMap()
        _ = map.set(key: "b", value: [2], context: Self.context)
        _ = map.set(key: "a", value: [1, 1], context: Self.context)
        let image = try map.snapshot()
        #expect(image == [1, 2, 1, 0x61, 2, 1, 1, 1, 0x62, 1, 2])
        #expect(try ReplicatedMap().snapshot() == [1, 0])

        let malformed: [[UInt8]] = [
            [],  // empty
            [2, 0],  // unknown version
            [1],  // no count
            [1, 1],  // count without entries
            [1, 2, 1, 0x61, 1, 1],  // fewer entries than counted
            [1, 0, 0],  // trailing bytes
            [1, 1, 1, 0xFF, 0],  // invalid UTF-8
            [1, 2, 1, 0x62, 0, 1, 0x61, 0],  // out of order
            [1, 2, 1, 0x61, 0, 1, 0x61, 0],  // repeated
            [1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],  // a huge count
            [1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],  // a huge key length
        ]
        for bytes in malformed {
            var copy = map
            do throws(RaftStateMachineError) {
                try copy.restore(from: bytes)
                Issue.record("accepted \(bytes)")
            } catch {
                #expect(error.code == .corruptSnapshot)
            }
            #expect(try copy.snapshot() == image)
        }
    }

    @Test("Codable: entries in key order, rejected out of order")
    func codable() throws {
        var map = ReplicatedMap()
        _ = map.putAll([MapEntry(key: "z", value: [26]), MapEntry(key: "a", value: [1])], context: Self.context)
        let bytes = try WireEncoder().encodeToBytes(map)
        let decoded = try WireDecoder().decode(ReplicatedMap.self, fromBytes: bytes)
        #expect(try decoded.snapshot() == map.snapshot())
        struct Form: Codable { var entries: [MapEntry] }
        #expect(try WireDecoder().decode(Form.self, fromBytes: bytes).entries.map(\.key) == ["a", "z"])
        let unsorted = try WireEncoder().encodeToBytes(
            Form(entries: [MapEntry(key: "z", value: []), MapEntry(key: "a", value: [])]))
        #expect(throws: (any Error).self) { try WireDecoder().decode(ReplicatedMap.self, fromBytes: unsorted) }
    }
}

@Suite("ReplicatedMap's event payloads")
struct EventPayloadTests {
    @Test("the hand-encoded MapEntry and MapChange payloads are the bytes WireEncoder gives the structs")
    func sameBytesAsCodable() throws {
        let keys = ["", "k", "ключ", String(repeating: "x", count: 300)]
        let values: [[UInt8]?] = [nil, [], [0], Array(0...255), Array(repeating: 7, count: 1000)]
        for key in keys {
            for value in values.compactMap({ $0 }) {
                #expect(
                    ReplicatedMap.eventPayload(key: key, fields: [("value", value)])
                        == (try WireEncoder().encodeToBytes(MapEntry(key: key, value: value))))
            }
            for old in values {
                for new in values {
                    #expect(
                        ReplicatedMap.eventPayload(key: key, fields: [("old", old), ("new", new)])
                            == (try WireEncoder().encodeToBytes(MapChange(key: key, old: old, new: new))))
                }
            }
        }
    }

    @Test("a change's deferred events give, kind by kind, the pattern and payload the typed subscriptions encode")
    func deferredEvents() throws {
        let keys = ["", "k", "ключ", String(repeating: "x", count: 300)]
        let values: [[UInt8]?] = [nil, [], [0], Array(0...255)]
        let encoder = WireEncoder()
        for key in keys {
            for old in values {
                for new in values {
                    let change = MapChangeEvents.make(key: key, old: old, new: new)
                    var expected: [(UInt64, [UInt8], [UInt8])] = [
                        (
                            ReplicatedMap.onChanged.kind, ReplicatedMap.onChanged.encode(pattern: key),
                            try encoder.encodeToBytes(MapChange(key: key, old: old, new: new))
                        )
                    ]
                    // An insert's events carry the new value, a removal's the old one; the same shapes.
                    let sides = [
                        (ReplicatedMap.onInserted.kind, ReplicatedMap.onKeyInserted, new),
                        (ReplicatedMap.onRemoved.kind, ReplicatedMap.onKeyRemoved, old),
                    ]
                    for (entryKind, keySubscription, value) in sides {
                        guard let value else { continue }
                        expected.append((entryKind, [], try encoder.encodeToBytes(MapEntry(key: key, value: value))))
                        expected.append(
                            (
                                keySubscription.kind, keySubscription.encode(pattern: key),
                                try encoder.encodeToBytes(value)
                            ))
                    }
                    for (kind, pattern, payload) in expected {
                        let deferred = RaftRaisedEvent(kind: kind, content: change)
                        #expect(deferred.pattern == pattern, "kind \(kind), key \(key)")
                        #expect(deferred.payload == payload, "kind \(kind), key \(key)")
                        // Equal to, and hashed like, the event raised with the bytes.
                        let eager = RaftRaisedEvent(kind: kind, pattern: pattern, payload: payload)
                        #expect(deferred == eager)
                        #expect(deferred.hashValue == eager.hashValue)
                    }
                }
            }
        }
    }

    @Test("setting the payload of a deferred event keeps its pattern, and the other way round")
    func deferredEventSetters() {
        let change = MapChangeEvents.make(key: "k", old: nil, new: [1, 2])
        var event = RaftRaisedEvent(kind: ReplicatedMap.onKeyInserted.kind, content: change)
        let pattern = event.pattern
        event.payload = [9]
        #expect(event.pattern == pattern)
        #expect(event.payload == [9])
        event.pattern = [7]
        #expect(event.pattern == [7])
        #expect(event.payload == [9])
    }
}
