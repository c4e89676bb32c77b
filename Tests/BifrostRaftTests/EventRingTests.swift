import Testing

@testable import BifrostRaft

/// The replay buffer's ring: events kept as bytes (raised as bytes, or content with a compact form) or as objects,
/// in order, within a count and a byte budget.
@Suite("Subscription hub: events as bytes in the ring")
struct EventRingTests {
    /// Content with a compact form: `size` bytes, each `seed`; its payload is those bytes.
    struct Compact: RaftEventContent, Equatable {
        let seed: UInt8
        let size: Int

        func pattern(kind: UInt64) -> [UInt8] { [seed] }
        func payload(kind: UInt64) -> [UInt8] { Array(repeating: seed, count: size) }
        var compactSize: Int? { 1 + size }
        func writeCompact(to bytes: UnsafeMutableRawBufferPointer) {
            for offset in bytes.indices { bytes[offset] = seed }
        }
        static func readCompact(from bytes: UnsafeRawBufferPointer) -> Compact? {
            guard let first = bytes.first, bytes.allSatisfy({ $0 == first }) else { return nil }
            return Compact(seed: first, size: bytes.count - 1)
        }
    }

    /// Content without a compact form (kept as an object).
    struct Plain: RaftEventContent {
        let seed: UInt8
        func pattern(kind: UInt64) -> [UInt8] { [] }
        func payload(kind: UInt64) -> [UInt8] { [seed, seed] }
    }

    static func record(_ index: UInt64, _ event: RaftRaisedEvent) -> [RaftRaisedEventRecord] {
        [RaftRaisedEventRecord(stateMachine: 3, index: index, ordinal: 0, event: event)]
    }

    @Test("compact content and byte events take no object; the newest are kept, rebuilt as they were raised")
    func compactAndBytes() {
        var hub = SubscriptionHub(capacity: 100, appliedAtStart: 0)
        var raised: [RaftRaisedEvent] = []
        for index in UInt64(1)...1_000 {
            let seed = UInt8(truncatingIfNeeded: index)
            let event =
                index % 3 == 0
                ? RaftRaisedEvent(kind: 7, pattern: [seed, 1], payload: Array(repeating: seed, count: Int(index % 50)))
                : RaftRaisedEvent(kind: index % 2, content: Compact(seed: seed, size: Int(index % 70)))
            raised.append(event)
            hub.record(Self.record(index, event))
        }
        #expect(hub.count == 100)
        #expect(hub.objectCount == 0)
        #expect(hub.events.map(\.position.index) == Array(901...1_000))
        #expect(hub.events.map(\.event) == Array(raised[900...]))
        #expect(hub.events.map(\.stateMachine) == Array(repeating: 3, count: 100))
        // 100 events of at most 75 bytes: the ring stayed at its first size.
        #expect(hub.byteCapacity == EventRing.initialBytes)
    }

    @Test("objects, bytes and compact content interleave in order; evicted objects are released")
    func mixedForms() {
        var hub = SubscriptionHub(capacity: 7, appliedAtStart: 0)
        var raised: [RaftRaisedEvent] = []
        for index in UInt64(1)...500 {
            let seed = UInt8(truncatingIfNeeded: index)
            let event: RaftRaisedEvent
            switch index % 4 {
            case 0: event = RaftRaisedEvent(kind: 1, content: Plain(seed: seed))
            case 1: event = RaftRaisedEvent(kind: 2, content: Compact(seed: seed, size: 3))
            case 2: event = RaftRaisedEvent(kind: 3, pattern: [], payload: [seed])
            default: event = RaftRaisedEvent(kind: 1, content: Plain(seed: seed &+ 1))
            }
            raised.append(event)
            hub.record(Self.record(index, event))
            let kept = hub.events
            guard kept.map(\.event) == Array(raised.suffix(7)),
                hub.objectCount == kept.count(where: { $0.event.kind == 1 })
            else {
                Issue.record("after event \(index): \(kept.map(\.position.index)), \(hub.objectCount) objects")
                return
            }
        }
    }

    @Test("the byte budget bounds the ring: the oldest make room, and a larger event is kept as an object")
    func byteBudget() {
        let budget = 1_000
        var hub = SubscriptionHub(capacity: 1_000, maxBytes: budget, appliedAtStart: 0)
        for index in UInt64(1)...300 {
            hub.record(
                Self.record(
                    index, RaftRaisedEvent(kind: 0, content: Compact(seed: UInt8(truncatingIfNeeded: index), size: 99)))
            )
        }
        #expect(hub.byteCapacity == budget)
        // 100 bytes each: at most 10 fit; the lap's end can hold one fewer.
        #expect((9...10).contains(hub.count))
        #expect(hub.events.map(\.position.index).last == 300)
        let at = { (index: UInt64) in SubscriptionHub.Position(index: index, ordinal: 0) }
        #expect(!hub.canResume(stateMachine: 3, kinds: [0], after: at(280)))
        #expect(hub.canResume(stateMachine: 3, kinds: [0], after: at(300 - UInt64(hub.count))))

        // An event larger than the whole budget is kept as an object, after the others.
        let large = RaftRaisedEvent(kind: 0, pattern: [], payload: Array(repeating: 9, count: budget * 2))
        hub.record(Self.record(301, large))
        #expect(hub.objectCount == 1)
        #expect(hub.events.last?.event == large)
        #expect(hub.events.map(\.position.index) == Array((302 - UInt64(hub.count))...301))
    }

    @Test("random sizes, forms and budgets: the kept events are the newest, within count and bytes (20 seeds)")
    func randomized() {
        for seed in UInt64(1)...20 {
            var random = Generator(state: seed)
            let capacity = Int(1 + random.below(64))
            let budget = Int(64 + random.below(4_096))
            var hub = SubscriptionHub(capacity: capacity, maxBytes: budget, appliedAtStart: 0)
            var raised: [RaftRaisedEvent] = []
            for index in UInt64(1)...2_000 {
                let size = Int(random.below(random.below(8) == 0 ? 600 : 60))
                let seedByte = UInt8(truncatingIfNeeded: random.next())
                let event: RaftRaisedEvent =
                    switch random.below(3) {
                    case 0: RaftRaisedEvent(kind: 0, content: Compact(seed: seedByte, size: size))
                    case 1: RaftRaisedEvent(kind: 1, pattern: [seedByte], payload: Array(repeating: 1, count: size))
                    default: RaftRaisedEvent(kind: 2, content: Plain(seed: seedByte))
                    }
                raised.append(event)
                hub.record(Self.record(index, event))
                let kept = hub.events
                let newest = Array(raised.suffix(kept.count))
                guard !kept.isEmpty, kept.count <= capacity, kept.map(\.event) == newest,
                    kept.last?.position.index == index, hub.byteCapacity <= max(budget, 0)
                else {
                    Issue.record("seed \(seed), event \(index): \(kept.count) kept of capacity \(capacity)")
                    return
                }
            }
        }
    }

    @Test("an event as large as the whole budget fits once the ring is emptied, wherever the write end was")
    func largestEventFitsAnEmptyRing() {
        var hub = SubscriptionHub(capacity: 10, maxBytes: 100, appliedAtStart: 0)
        hub.record(Self.record(1, RaftRaisedEvent(kind: 0, content: Compact(seed: 1, size: 49))))  // bytes 0..<50
        hub.record(Self.record(2, RaftRaisedEvent(kind: 0, content: Compact(seed: 2, size: 29))))  // 50..<80
        // 90 bytes fit only in an empty ring: both go, and it starts the next lap rather than at byte 80.
        let large = RaftRaisedEvent(kind: 0, content: Compact(seed: 3, size: 89))
        hub.record(Self.record(3, large))
        #expect(hub.objectCount == 0)
        #expect(hub.events.map(\.event) == [large])
        let full = RaftRaisedEvent(kind: 0, content: Compact(seed: 4, size: 99))
        hub.record(Self.record(4, full))
        #expect(hub.objectCount == 0)
        #expect(hub.events.map(\.event) == [full])
        #expect(hub.byteCapacity == 100)
    }

    @Test("a budget of zero keeps every event, as an object")
    func zeroBudget() {
        var hub = SubscriptionHub(capacity: 4, maxBytes: 0, appliedAtStart: 0)
        let events = [
            RaftRaisedEvent(kind: 0, content: Compact(seed: 1, size: 4)),
            RaftRaisedEvent(kind: 0, pattern: [], payload: []),
            RaftRaisedEvent(kind: 1, content: Plain(seed: 2)),
        ]
        for (offset, event) in events.enumerated() { hub.record(Self.record(UInt64(offset + 1), event)) }
        #expect(hub.byteCapacity == 0)
        #expect(hub.objectCount == 3)
        #expect(hub.events.map(\.event) == events)
    }

    /// Content whose compact form never reads back.
    struct Unreadable: RaftEventContent {
        func pattern(kind: UInt64) -> [UInt8] { [] }
        func payload(kind: UInt64) -> [UInt8] { [1] }
        var compactSize: Int? { 3 }
        func writeCompact(to bytes: UnsafeMutableRawBufferPointer) {}
        static func readCompact(from bytes: UnsafeRawBufferPointer) -> Unreadable? { nil }
    }

    @Test("a replay that meets an event it cannot read back ends with eventsLost instead of skipping it")
    func unreadableEndsTheReplay() {
        var hub = SubscriptionHub(capacity: 8, appliedAtStart: 0)
        hub.record(Self.record(1, RaftRaisedEvent(kind: 0, content: Compact(seed: 1, size: 2))))
        hub.record(Self.record(2, RaftRaisedEvent(kind: 0, content: Unreadable())))
        hub.record(Self.record(3, RaftRaisedEvent(kind: 0, content: Compact(seed: 3, size: 2))))
        let received = SubscriptionHubTests.Received()
        let ended = Ended()
        // A local watcher of every event after entry `index`, recording what it receives and how it ends.
        func watcher(after index: UInt64) -> SubscriptionHub.Watcher {
            SubscriptionHub.Watcher(
                subscription: nil, matches: { _, _ in true }, after: SubscriptionHub.Position(index: index, ordinal: 0),
                deliver: {
                    received.indexes.append($0.index)
                    return true
                },
                end: { ended.errors.append($0) }, finish: {})
        }
        hub.attach(1, watcher(after: 0))
        #expect(received.indexes == [1])
        #expect(ended.errors.map(\.code) == [.eventsLost])
        #expect(hub.watchers.isEmpty)

        // A watcher already past it replays the rest.
        hub.attach(2, watcher(after: 2))
        #expect(received.indexes == [1, 3])
        #expect(hub.watchers.count == 1)
    }

    final class Ended: @unchecked Sendable {
        // `@unchecked Sendable`: written only by the hub, on the test's own thread.
        var errors: [RaftClientError] = []
    }

    @Test("a reset forgets the events and their memory")
    func reset() {
        var hub = SubscriptionHub(capacity: 10, appliedAtStart: 0)
        for index in UInt64(1)...20 {
            hub.record(Self.record(index, RaftRaisedEvent(kind: 0, content: Compact(seed: 1, size: 5))))
        }
        hub.reset(at: 20)
        #expect(hub.count == 0)
        #expect(hub.byteCapacity == 0)
        hub.record(Self.record(21, RaftRaisedEvent(kind: 0, content: Compact(seed: 2, size: 5))))
        #expect(hub.events.map(\.event) == [RaftRaisedEvent(kind: 0, content: Compact(seed: 2, size: 5))])
        #expect(!hub.canResume(stateMachine: 3, kinds: [0], after: SubscriptionHub.Position(index: 19, ordinal: 0)))
    }
}
