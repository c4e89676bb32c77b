import BifrostMap
import BifrostRaftCore
import Testing

// MARK: - Driving a MasterStateMachine with the map registered

// The argument layout the generated client writes: one field per parameter, named as the parameter; a nil optional
// is left out, a present one is encoded as the `Optional` (with its tag), hence the double optionals below.
private struct KeyValueArgument: Codable {
    var key: String
    var value: [UInt8]
}
private struct KeyArgument: Codable { var key: String }
private struct SwapArgument: Codable {
    var key: String
    var expected: [UInt8]??
    var new: [UInt8]??
}
private struct EntriesArgument: Codable { var entries: [MapEntry] }
private struct ListArgument: Codable {
    var prefix: String
    var after: String??
    var limit: Int
}

/// A `MasterStateMachine` with a `ReplicatedMap` registered under ``ReplicatedMap/defaultID``, fed committed
/// entries one index at a time, with typed helpers for every command and query.
struct MapDriver {
    var master = MasterStateMachine()
    var index: UInt64 = 0

    init(_ map: ReplicatedMap = ReplicatedMap()) throws {
        try master.register(map, id: ReplicatedMap.defaultID)
    }

    static func id(_ selector: String) throws -> UInt64 {
        let id = try #require(ReplicatedMap.functionIDs[selector], "no function \(selector)")
        #expect(id == RPCFunctionID.of(selector))
        return id
    }

    mutating func command<Result: Decodable>(
        _ selector: String, _ argument: [UInt8] = [], as type: Result.Type = Result.self
    ) throws -> Result {
        try Self.decoded(rawCommand(selector, argument))
    }

    /// Applies the command in the next entry and returns the master's reply.
    mutating func rawCommand(_ selector: String, _ argument: [UInt8]) throws -> RaftReply {
        index += 1
        let request = RaftCommandRequest(
            session: 0, sequence: 0, acknowledged: 0, stateMachine: ReplicatedMap.defaultID,
            function: try Self.id(selector), argument: argument)
        let payload = Wire.encodeToBytes(RaftLogCommand(time: 1_000 + index, body: .user(request)))
        return master.apply(Entry(index: index, term: 1, payload: payload), isLeader: true)
    }

    func query<Result: Decodable>(
        _ selector: String, _ argument: [UInt8] = [], as type: Result.Type = Result.self
    ) throws -> Result {
        try Self.decoded(
            master.query(
                stateMachine: ReplicatedMap.defaultID, function: try Self.id(selector), argument: argument,
                appliedIndex: index))
    }

    static func decoded<Value: Decodable>(_ reply: RaftReply) throws -> Value {
        guard case .ok(let value, _) = reply else {
            throw RaftClientError(code: .invalidRequest, message: "expected a value, got \(reply)")
        }
        return try WireDecoder().decode(Value.self, fromBytes: value)
    }

    // MARK: Commands

    mutating func set(_ key: String, _ value: [UInt8]) throws -> [UInt8]? {
        try command(
            "ReplicatedMap.set(key:value:context:)",
            WireEncoder().encodeToBytes(KeyValueArgument(key: key, value: value)))
    }

    /// `put(key:value:)`; checks that the reply is a success without a value.
    mutating func put(_ key: String, _ value: [UInt8]) throws {
        let reply = try rawCommand(
            "ReplicatedMap.put(key:value:context:)",
            WireEncoder().encodeToBytes(KeyValueArgument(key: key, value: value)))
        guard case .ok(let result, let at) = reply, result.isEmpty, at == index else {
            throw RaftClientError(code: .invalidRequest, message: "put answered \(reply)")
        }
    }

    mutating func insertIfAbsent(_ key: String, _ value: [UInt8]) throws -> [UInt8]? {
        try command(
            "ReplicatedMap.insertIfAbsent(key:value:context:)",
            WireEncoder().encodeToBytes(KeyValueArgument(key: key, value: value)))
    }

    mutating func remove(_ key: String) throws -> [UInt8]? {
        try command("ReplicatedMap.remove(key:context:)", WireEncoder().encodeToBytes(KeyArgument(key: key)))
    }

    mutating func compareAndSwap(_ key: String, expected: [UInt8]?, new: [UInt8]?) throws -> MapSwap {
        try command(
            "ReplicatedMap.compareAndSwap(key:expected:new:context:)",
            WireEncoder().encodeToBytes(
                SwapArgument(key: key, expected: expected.map { .some($0) }, new: new.map { .some($0) })))
    }

    mutating func putAll(_ entries: [MapEntry]) throws -> UInt64 {
        try command("ReplicatedMap.putAll(_:context:)", WireEncoder().encodeToBytes(EntriesArgument(entries: entries)))
    }

    mutating func clear() throws -> UInt64 { try command("ReplicatedMap.clear(context:)") }

    // MARK: Queries

    func get(_ key: String) throws -> [UInt8]? {
        try query("ReplicatedMap.get(key:)", WireEncoder().encodeToBytes(KeyArgument(key: key)))
    }

    func contains(_ key: String) throws -> Bool {
        try query("ReplicatedMap.contains(key:)", WireEncoder().encodeToBytes(KeyArgument(key: key)))
    }

    func count() throws -> UInt64 { try query("ReplicatedMap.count()") }

    func list(prefix: String = "", after: String? = nil, limit: Int) throws -> MapPage {
        try query(
            "ReplicatedMap.list(prefix:after:limit:)",
            WireEncoder().encodeToBytes(ListArgument(prefix: prefix, after: after.map { .some($0) }, limit: limit)))
    }

    /// Every entry with `prefix`, walking the pages of `limit` entries through the `next` cursors.
    func listAll(prefix: String = "", limit: Int) throws -> (entries: [MapEntry], pages: Int) {
        var entries: [MapEntry] = []
        var after: String?
        var pages = 0
        while true {
            let page = try list(prefix: prefix, after: after, limit: limit)
            pages += 1
            #expect(page.entries.count <= limit)
            entries += page.entries
            guard let next = page.next else { return (entries, pages) }
            #expect(next == page.entries.last?.key)
            after = next
            if pages > 10_000 { throw RaftClientError(code: .invalidRequest, message: "too many pages") }
        }
    }

    // MARK: Events

    /// The events the last command raised, decoded: (subscription kind, pattern, payload bytes).
    var events: [RaftRaisedEventRecord] { master.lastEvents }
}

/// An event the map raised, decoded into one case per subscription.
enum MapEvent: Hashable {
    case inserted(MapEntry)
    case keyInserted(String, [UInt8])
    case removed(MapEntry)
    case keyRemoved(String, [UInt8])
    case changed(String, MapChange)

    init(_ record: RaftRaisedEventRecord) throws {
        let event = record.event
        let decoder = WireDecoder()
        switch event.kind {
        case ReplicatedMap.onInserted.kind:
            #expect(event.pattern == ReplicatedMap.onInserted.encode(pattern: NoPattern()))
            self = .inserted(try decoder.decode(MapEntry.self, fromBytes: event.payload))
        case ReplicatedMap.onRemoved.kind:
            #expect(event.pattern == ReplicatedMap.onRemoved.encode(pattern: NoPattern()))
            self = .removed(try decoder.decode(MapEntry.self, fromBytes: event.payload))
        case ReplicatedMap.onKeyInserted.kind:
            let key = try decoder.decode(String.self, fromBytes: event.pattern)
            #expect(event.pattern == ReplicatedMap.onKeyInserted.encode(pattern: key))
            self = .keyInserted(key, try decoder.decode([UInt8].self, fromBytes: event.payload))
        case ReplicatedMap.onKeyRemoved.kind:
            let key = try decoder.decode(String.self, fromBytes: event.pattern)
            #expect(event.pattern == ReplicatedMap.onKeyRemoved.encode(pattern: key))
            self = .keyRemoved(key, try decoder.decode([UInt8].self, fromBytes: event.payload))
        case ReplicatedMap.onChanged.kind:
            let key = try decoder.decode(String.self, fromBytes: event.pattern)
            #expect(event.pattern == ReplicatedMap.onChanged.encode(pattern: key))
            self = .changed(key, try decoder.decode(MapChange.self, fromBytes: event.payload))
        default:
            throw RaftClientError(code: .invalidRequest, message: "unknown event kind \(event.kind)")
        }
    }

    /// The events of the last command, in order; checks their state machine, index and ordinals.
    static func last(_ driver: MapDriver) throws -> [MapEvent] {
        let records = driver.events
        for (ordinal, record) in records.enumerated() {
            #expect(record.stateMachine == ReplicatedMap.defaultID)
            #expect(record.index == driver.index)
            #expect(record.ordinal == UInt32(ordinal))
        }
        return try records.map(MapEvent.init)
    }

    static func insert(_ key: String, _ value: [UInt8]) -> [MapEvent] {
        [
            .inserted(MapEntry(key: key, value: value)), .keyInserted(key, value),
            .changed(key, MapChange(key: key, old: nil, new: value)),
        ]
    }

    static func remove(_ key: String, _ value: [UInt8]) -> [MapEvent] {
        [
            .removed(MapEntry(key: key, value: value)), .keyRemoved(key, value),
            .changed(key, MapChange(key: key, old: value, new: nil)),
        ]
    }

    static func update(_ key: String, from old: [UInt8], to new: [UInt8]) -> [MapEvent] {
        [.changed(key, MapChange(key: key, old: old, new: new))]
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

// MARK: - Commands, queries and events

@Suite("ReplicatedMap through a MasterStateMachine")
struct ReplicatedMapTests {
    @Test("function ids and subscription kinds are the documented ones")
    func ids() {
        #expect(
            Set(ReplicatedMap.functionIDs.keys) == [
                "ReplicatedMap.set(key:value:context:)", "ReplicatedMap.put(key:value:context:)",
                "ReplicatedMap.insertIfAbsent(key:value:context:)",
                "ReplicatedMap.remove(key:context:)", "ReplicatedMap.compareAndSwap(key:expected:new:context:)",
                "ReplicatedMap.putAll(_:context:)", "ReplicatedMap.clear(context:)", "ReplicatedMap.get(key:)",
                "ReplicatedMap.contains(key:)", "ReplicatedMap.count()", "ReplicatedMap.list(prefix:after:limit:)",
            ])
        for (selector, id) in ReplicatedMap.functionIDs { #expect(id == RPCFunctionID.of(selector)) }
        #expect(
            ReplicatedMap.subscriptionKinds == [
                "onInserted": ReplicatedMap.onInserted.kind, "onKeyInserted": ReplicatedMap.onKeyInserted.kind,
                "onRemoved": ReplicatedMap.onRemoved.kind, "onKeyRemoved": ReplicatedMap.onKeyRemoved.kind,
                "onChanged": ReplicatedMap.onChanged.kind,
            ])
        #expect(ReplicatedMap.defaultID == 1)
    }

    @Test("set: returns the previous value; inserts and updates raise their events")
    func set() throws {
        var map = try MapDriver()
        #expect(try map.set("a", bytes("1")) == nil)
        #expect(try MapEvent.last(map) == MapEvent.insert("a", bytes("1")))
        #expect(try map.set("a", bytes("2")) == bytes("1"))
        #expect(try MapEvent.last(map) == MapEvent.update("a", from: bytes("1"), to: bytes("2")))
        // Setting the same value again is still a change (old == new).
        #expect(try map.set("a", bytes("2")) == bytes("2"))
        #expect(try MapEvent.last(map) == MapEvent.update("a", from: bytes("2"), to: bytes("2")))
        // Empty keys and empty values are ordinary.
        #expect(try map.set("", []) == nil)
        #expect(try map.get("") == [])
        #expect(try map.contains(""))
        #expect(try map.get("a") == bytes("2"))
        #expect(try map.count() == 2)
    }

    @Test("put: sets as set does and raises the same events, with an empty reply; copies keep their values")
    func put() throws {
        var map = try MapDriver()
        try map.put("a", bytes("1"))
        #expect(try MapEvent.last(map) == MapEvent.insert("a", bytes("1")))
        try map.put("a", bytes("2"))
        #expect(try MapEvent.last(map) == MapEvent.update("a", from: bytes("1"), to: bytes("2")))
        // A longer value than the record has room for replaces the record.
        let long = Array(repeating: UInt8(9), count: 300)
        try map.put("a", long)
        #expect(try MapEvent.last(map) == MapEvent.update("a", from: bytes("2"), to: long))
        #expect(try map.get("a") == long)
        // A copy of the map (as a snapshot holds) shares the records: a put must not write through to it.
        let copy = map
        try map.put("a", bytes("3"))
        #expect(try MapEvent.last(map) == MapEvent.update("a", from: long, to: bytes("3")))
        #expect(try copy.get("a") == long)
        #expect(try map.get("a") == bytes("3"))
        try map.put("", [])
        #expect(try map.get("") == [])
        #expect(try map.count() == 2)
        // `set` on the same key still answers with the value that put wrote.
        #expect(try map.set("a", bytes("4")) == bytes("3"))
    }

    @Test("insertIfAbsent: inserts only a missing key; a present key keeps its value and raises nothing")
    func insertIfAbsent() throws {
        var map = try MapDriver()
        #expect(try map.insertIfAbsent("k", bytes("first")) == nil)
        #expect(try MapEvent.last(map) == MapEvent.insert("k", bytes("first")))
        #expect(try map.insertIfAbsent("k", bytes("second")) == bytes("first"))
        #expect(try MapEvent.last(map).isEmpty)
        #expect(try map.get("k") == bytes("first"))
        #expect(try map.count() == 1)
    }

    @Test("remove: returns the removed value; a missing key returns nil and raises nothing")
    func remove() throws {
        var map = try MapDriver()
        _ = try map.set("k", bytes("v"))
        #expect(try map.remove("k") == bytes("v"))
        #expect(try MapEvent.last(map) == MapEvent.remove("k", bytes("v")))
        #expect(try map.remove("k") == nil)
        #expect(try MapEvent.last(map).isEmpty)
        #expect(try map.get("k") == nil)
        #expect(try !map.contains("k"))
        #expect(try map.count() == 0)
        // A removed key can come back, and is an insert again.
        #expect(try map.set("k", bytes("w")) == nil)
        #expect(try MapEvent.last(map) == MapEvent.insert("k", bytes("w")))
    }

    @Test("compareAndSwap: absent, expected, mismatch, removal through nil, no-op swaps")
    func compareAndSwap() throws {
        var map = try MapDriver()
        // Absent expected on an absent key: inserts.
        #expect(
            try map.compareAndSwap("k", expected: nil, new: bytes("1")) == MapSwap(swapped: true, current: bytes("1")))
        #expect(try MapEvent.last(map) == MapEvent.insert("k", bytes("1")))
        // Absent expected on a present key: fails, reports the current value.
        #expect(
            try map.compareAndSwap("k", expected: nil, new: bytes("2")) == MapSwap(swapped: false, current: bytes("1")))
        #expect(try MapEvent.last(map).isEmpty)
        // Mismatch.
        #expect(
            try map.compareAndSwap("k", expected: bytes("0"), new: bytes("2"))
                == MapSwap(swapped: false, current: bytes("1")))
        #expect(try MapEvent.last(map).isEmpty)
        #expect(try map.get("k") == bytes("1"))
        // Expected value: swaps.
        #expect(
            try map.compareAndSwap("k", expected: bytes("1"), new: bytes("2"))
                == MapSwap(swapped: true, current: bytes("2")))
        #expect(try MapEvent.last(map) == MapEvent.update("k", from: bytes("1"), to: bytes("2")))
        // Swapping to the same value succeeds and raises nothing.
        #expect(
            try map.compareAndSwap("k", expected: bytes("2"), new: bytes("2"))
                == MapSwap(swapped: true, current: bytes("2")))
        #expect(try MapEvent.last(map).isEmpty)
        // New nil removes.
        #expect(try map.compareAndSwap("k", expected: bytes("2"), new: nil) == MapSwap(swapped: true, current: nil))
        #expect(try MapEvent.last(map) == MapEvent.remove("k", bytes("2")))
        #expect(try !map.contains("k"))
        // Expected a value on an absent key: fails with current nil.
        #expect(
            try map.compareAndSwap("k", expected: bytes("2"), new: bytes("3")) == MapSwap(swapped: false, current: nil))
        // nil → nil on an absent key: swapped, nothing changes.
        #expect(try map.compareAndSwap("k", expected: nil, new: nil) == MapSwap(swapped: true, current: nil))
        #expect(try MapEvent.last(map).isEmpty)
        #expect(try map.count() == 0)
    }

    @Test("putAll: one entry, many keys; counts the new ones; events per key in order")
    func putAll() throws {
        var map = try MapDriver()
        _ = try map.set("b", bytes("old"))
        let entries = [
            MapEntry(key: "a", value: bytes("1")), MapEntry(key: "b", value: bytes("2")),
            MapEntry(key: "c", value: bytes("3")),
        ]
        #expect(try map.putAll(entries) == 2)
        #expect(
            try MapEvent.last(map)
                == MapEvent.insert("a", bytes("1")) + MapEvent.update("b", from: bytes("old"), to: bytes("2"))
                + MapEvent.insert("c", bytes("3")))
        #expect(try map.count() == 3)
        #expect(try map.get("b") == bytes("2"))
        // A key repeated in one batch: the last value wins; only its first occurrence is new.
        #expect(try map.putAll([MapEntry(key: "d", value: bytes("x")), MapEntry(key: "d", value: bytes("y"))]) == 1)
        #expect(try map.get("d") == bytes("y"))
        #expect(try map.putAll([]) == 0)
        #expect(try MapEvent.last(map).isEmpty)
    }

    @Test("clear: removes every key, returns the count, raises removals in key order")
    func clear() throws {
        var map = try MapDriver()
        #expect(try map.clear() == 0)
        #expect(try MapEvent.last(map).isEmpty)
        _ = try map.putAll([
            MapEntry(key: "z", value: bytes("26")), MapEntry(key: "a", value: bytes("1")),
            MapEntry(key: "m", value: bytes("13")),
        ])
        #expect(try map.clear() == 3)
        #expect(
            try MapEvent.last(map)
                == MapEvent.remove("a", bytes("1")) + MapEvent.remove("m", bytes("13"))
                + MapEvent.remove("z", bytes("26")))
        #expect(try map.count() == 0)
        #expect(try map.list(limit: 10) == MapPage(entries: [], next: nil))
        #expect(try map.set("a", bytes("again")) == nil)
    }

    @Test("list: prefix, after (exclusive), limit (clamped to 1...10,000), next cursor")
    func list() throws {
        var map = try MapDriver()
        let keys = ["a", "ab", "abc", "abd", "ac", "b", "ba", "user/1", "user/10", "user/2", "users", "ü", "日本"]
        _ = try map.putAll(keys.reversed().map { MapEntry(key: $0, value: bytes($0.uppercased())) })

        // Everything, in key order.
        let all = try map.list(limit: 100)
        #expect(all.entries.map(\.key) == keys.sorted())
        #expect(all.entries.allSatisfy { $0.value == bytes($0.key.uppercased()) })
        #expect(all.next == nil)

        // A prefix.
        #expect(try map.list(prefix: "ab", limit: 100).entries.map(\.key) == ["ab", "abc", "abd"])
        #expect(try map.list(prefix: "user/", limit: 100).entries.map(\.key) == ["user/1", "user/10", "user/2"])
        #expect(
            try map.list(prefix: "user", limit: 100).entries.map(\.key) == ["user/1", "user/10", "user/2", "users"])
        #expect(try map.list(prefix: "日", limit: 100).entries.map(\.key) == ["日本"])
        #expect(try map.list(prefix: "nope", limit: 100) == MapPage(entries: [], next: nil))
        #expect(try map.list(prefix: "abc", limit: 100).entries.map(\.key) == ["abc"])
        #expect(try map.list(prefix: "abcd", limit: 100).entries.isEmpty)

        // After: exclusive, need not be a key, may lie before or past the prefix range.
        #expect(try map.list(prefix: "a", after: "ab", limit: 100).entries.map(\.key) == ["abc", "abd", "ac"])
        #expect(try map.list(prefix: "a", after: "abcc", limit: 100).entries.map(\.key) == ["abd", "ac"])
        #expect(try map.list(prefix: "b", after: "", limit: 100).entries.map(\.key) == ["b", "ba"])
        #expect(try map.list(prefix: "b", after: "a", limit: 100).entries.map(\.key) == ["b", "ba"])
        #expect(try map.list(prefix: "a", after: "zzz", limit: 100).entries.isEmpty)
        #expect(try map.list(prefix: "a", after: "ac", limit: 100) == MapPage(entries: [], next: nil))

        // Limit: a full page has a next cursor (its last key) only when more entries follow.
        let first = try map.list(prefix: "a", limit: 2)
        #expect(first.entries.map(\.key) == ["a", "ab"])
        #expect(first.next == "ab")
        let exact = try map.list(prefix: "a", after: "abc", limit: 2)
        #expect(exact.entries.map(\.key) == ["abd", "ac"])
        #expect(exact.next == nil)
        // Limits below 1 are 1.
        #expect(try map.list(limit: 0).entries.map(\.key) == ["a"])
        #expect(try map.list(limit: -5).entries.map(\.key) == ["a"])
    }

    @Test("list pagination walks every key exactly once, for several page sizes and prefixes")
    func pagination() throws {
        var map = try MapDriver()
        // 2,000 keys in a scrambled order, under 4 prefixes.
        var entries: [MapEntry] = []
        for i in 0..<2_000 {
            let n = (i * 7_919) % 2_000
            entries.append(MapEntry(key: "p\(n % 4)/\(n)", value: bytes("\(n)")))
        }
        for batch in stride(from: 0, to: entries.count, by: 500) {
            _ = try map.putAll(Array(entries[batch..<batch + 500]))
        }
        #expect(try map.count() == 2_000)
        let sortedKeys = entries.map(\.key).sorted()
        for limit in [1, 7, 100, 499, 500, 2_000, 5_000] {
            let (all, pages) = try map.listAll(limit: limit)
            #expect(all.map(\.key) == sortedKeys)
            #expect(pages == max(1, (2_000 + limit - 1) / limit))
            let (p2, _) = try map.listAll(prefix: "p2/", limit: limit)
            #expect(p2.map(\.key) == sortedKeys.filter { $0.hasPrefix("p2/") })
        }
        // The limit is capped at 10,000.
        _ = try map.putAll((0..<9_000).map { MapEntry(key: "q/\($0)", value: []) })
        let capped = try map.list(limit: 1_000_000)
        #expect(capped.entries.count == 10_000)
        #expect(capped.next == capped.entries.last?.key)
        #expect(try map.list(after: capped.next, limit: 1_000_000).entries.count == 1_000)

        // Removing keys between pages: the cursor still continues after the last key seen.
        let page = try map.list(prefix: "p0/", limit: 10)
        let next = try #require(page.next)
        _ = try map.remove(next)
        let following = try map.list(prefix: "p0/", after: next, limit: 10)
        #expect(following.entries.first?.key == sortedKeys.filter { $0.hasPrefix("p0/") }[10])
    }

    @Test("queries on a constant map: get, contains, count")
    func queries() throws {
        var map = try MapDriver()
        #expect(try map.get("x") == nil)
        #expect(try !map.contains("x"))
        #expect(try map.count() == 0)
        _ = try map.putAll((0..<100).map { MapEntry(key: "k\($0)", value: [UInt8(truncatingIfNeeded: $0)]) })
        #expect(try map.count() == 100)
        for i in 0..<100 {
            #expect(try map.get("k\(i)") == [UInt8(truncatingIfNeeded: i)])
            #expect(try map.contains("k\(i)"))
        }
        #expect(try !map.contains("k100"))
    }

    @Test("bad arguments are rejected, not trapped on")
    func badArguments() throws {
        var map = ReplicatedMap()
        let context = RaftApplyContext(index: 1, term: 1, time: 0, isLeader: true)
        let selectors = [
            "ReplicatedMap.set(key:value:context:)", "ReplicatedMap.compareAndSwap(key:expected:new:context:)",
        ]
        for selector in selectors {
            let function = try MapDriver.id(selector)
            do throws(RaftStateMachineError) {
                _ = try map.apply(function: function, argument: [0xFF, 0x01], context: context)
                Issue.record("a bad argument was accepted")
            } catch {
                #expect(error.code == .badArgument)
            }
        }
        #expect(map.count() == 0)
    }
}

// MARK: - Snapshots

@Suite("ReplicatedMap snapshots")
struct ReplicatedMapSnapshotTests {
    /// A map built directly (no events collected) from `entries`, in their order.
    static func map(_ entries: [MapEntry]) -> ReplicatedMap {
        var map = ReplicatedMap()
        _ = map.putAll(entries, context: RaftApplyContext(index: 1, term: 1, time: 0, isLeader: true))
        return map
    }

    static let sample: [MapEntry] =
        (0..<500).map { i in
            MapEntry(key: "key-\((i * 37) % 500)", value: Array(repeating: UInt8(truncatingIfNeeded: i), count: i % 17))
        } + [MapEntry(key: "", value: []), MapEntry(key: "ünïcödé/日本", value: [0, 255])]

    @Test("snapshot → restore round trip through the RaftStateMachine conformance")
    func roundTrip() throws {
        let original = Self.map(Self.sample)
        let image = try original.snapshot()
        var restored = ReplicatedMap()
        _ = restored.set(
            key: "stale", value: [1], context: RaftApplyContext(index: 1, term: 1, time: 0, isLeader: false))
        try restored.restore(from: image)
        #expect(restored.count() == original.count())
        #expect(restored.get(key: "stale") == nil)
        #expect(
            restored.list(prefix: "", after: nil, limit: 10_000) == original.list(prefix: "", after: nil, limit: 10_000)
        )
        #expect(try restored.snapshot() == image)
        // The empty map round-trips too.
        var empty = Self.map(Self.sample)
        try empty.restore(from: try ReplicatedMap().snapshot())
        #expect(empty.count() == 0)
        #expect(try empty.snapshot() == ReplicatedMap().snapshot())
    }

    @Test("the image is canonical: equal states give equal bytes, whatever the history")
    func canonical() throws {
        #expect(Set(Self.sample.map(\.key)).count == Self.sample.count)  // every order gives the same state
        let forward = Self.map(Self.sample)
        let backward = Self.map(Self.sample.reversed())
        var scrambled = Self.map(Self.sample.shuffled() + [MapEntry(key: "temporary", value: [9])])
        _ = scrambled.remove(key: "temporary", context: RaftApplyContext(index: 2, term: 1, time: 0, isLeader: true))
        var rebuilt = Self.map(Self.sample.map { MapEntry(key: $0.key, value: [42]) })
        _ = rebuilt.putAll(
            Self.sample.shuffled(), context: RaftApplyContext(index: 2, term: 1, time: 0, isLeader: true))
        let image = try forward.snapshot()
        #expect(try backward.snapshot() == image)
        #expect(try scrambled.snapshot() == image)
        #expect(try rebuilt.snapshot() == image)
        #expect(try Self.map([MapEntry(key: "a", value: [1])]).snapshot() != image)
    }

    @Test("the master's snapshot carries the map; a corrupt image is corruptSnapshot and leaves the map as it was")
    func throughTheMaster() throws {
        var driver = try MapDriver()
        _ = try driver.putAll(Self.sample)
        let image = try driver.master.snapshot()
        var restored = try MapDriver()
        try restored.master.restore(from: image)
        restored.index = driver.index
        #expect(try restored.count() == driver.count())
        #expect(try restored.listAll(limit: 100).entries == driver.listAll(limit: 100).entries)

        var map = Self.map(Self.sample)
        let before = try map.snapshot()
        for corrupt in [[0xFF], [0xFF, 0xFF], Array(before.dropLast()), before + [0]] as [[UInt8]] {
            do throws(RaftStateMachineError) {
                try map.restore(from: corrupt)
                Issue.record("a corrupt image was accepted")
            } catch {
                #expect(error.code == .corruptSnapshot)
            }
        }
        #expect(try map.snapshot() == before)
    }
}
