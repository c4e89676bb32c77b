import Testing

@testable import BifrostMap
@testable import BifrostRaft

/// The map's change events in the replay buffer's compact form.
@Suite("ReplicatedMap events: the compact form")
struct MapChangeEventsTests {
    static let kinds = [
        ReplicatedMap.onInserted.kind, ReplicatedMap.onKeyInserted.kind, ReplicatedMap.onRemoved.kind,
        ReplicatedMap.onKeyRemoved.kind, ReplicatedMap.onChanged.kind,
    ]

    static func compact(_ change: MapChangeEvents) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: change.compactSize ?? 0)
        bytes.withUnsafeMutableBytes { change.writeCompact(to: $0) }
        return bytes
    }

    @Test("rebuilt from its compact form, a change gives the same patterns and payloads for every kind")
    func roundTrip() throws {
        let cases: [(String, [UInt8]?, [UInt8]?)] = [
            ("k0000000000001", nil, Array(repeating: 7, count: 100)),
            ("clé-é", Array("old".utf8), Array("new".utf8)),
            ("", [], nil),
            ("gone", Array(repeating: 1, count: 4_000), nil),
            ("both-empty", [], []),
        ]
        for (key, old, new) in cases {
            let change = MapChangeEvents.make(key: key, old: old, new: new)
            let bytes = Self.compact(change)
            #expect(bytes.count == 12 + key.utf8.count + (old?.count ?? 0) + (new?.count ?? 0))
            let rebuilt = try #require(bytes.withUnsafeBytes { MapChangeEvents.readCompact(from: $0) })
            #expect(rebuilt.key == key)
            #expect(rebuilt.old == old)
            #expect(rebuilt.new == new)
            for kind in Self.kinds {
                #expect(rebuilt.pattern(kind: kind) == change.pattern(kind: kind), "\(key), kind \(kind)")
                #expect(rebuilt.payload(kind: kind) == change.payload(kind: kind), "\(key), kind \(kind)")
            }
        }
    }

    @Test("bytes that are not a compact form read as nil, not as a wrong change")
    func badBytes() {
        let good = Self.compact(MapChangeEvents.make(key: "key", old: [1, 2], new: [3]))
        var damaged: [[UInt8]] = [[], Array(good.prefix(11)), Array(good.dropLast()), good + [0]]
        var negative = good
        negative.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0xFF])  // a key length of -1
        damaged.append(negative)
        var tooLong = good
        tooLong.replaceSubrange(4..<8, with: [0xFF, 0xFF, 0xFF, 0x7F])  // an old value of 2 GiB
        damaged.append(tooLong)
        for bytes in damaged {
            #expect(bytes.withUnsafeBytes { MapChangeEvents.readCompact(from: $0) } == nil, "\(bytes)")
        }
    }

    @Test("the map's events go into the replay buffer as bytes and come back equal")
    func throughTheHub() {
        var hub = SubscriptionHub(capacity: 16, appliedAtStart: 0)
        var raised: [RaftRaisedEvent] = []
        for index in UInt64(1)...40 {
            let change = MapChangeEvents.make(
                key: "k\(index % 5)", old: index % 2 == 0 ? [UInt8(index)] : nil, new: [UInt8(index), 0])
            let event = RaftRaisedEvent(kind: Self.kinds[Int(index) % Self.kinds.count], content: change)
            raised.append(event)
            hub.record([RaftRaisedEventRecord(stateMachine: 1, index: index, ordinal: 0, event: event)])
        }
        #expect(hub.objectCount == 0)
        #expect(hub.events.map(\.event) == Array(raised.suffix(16)))
    }
}
