import BifrostRaftCore
import BifrostWire
import Testing

@testable import BifrostRaft

/// The apply path's shortcuts (every node runs it for every write) against the general code they stand for: the
/// log command read straight out of the entry's bytes, the event sink reused from one command to the next, and
/// the session looked up once per command.
@Suite("The apply path")
struct ApplyPathTests {
    static func randomCommand(_ random: inout Generator) -> RaftLogCommand {
        let time = random.number()
        switch random.below(5) {
        case 0: return RaftLogCommand(time: time, body: .openSession)
        case 1: return RaftLogCommand(time: time, body: .closeSession(random.number()))
        case 2: return RaftLogCommand(time: time, body: .unsubscribe(random.number()))
        case 3:
            let requests = (0...random.below(4)).map { _ in randomRequest(&random) }
            return RaftLogCommand(time: time, body: .batch(requests))
        default:
            return RaftLogCommand(time: time, body: .user(randomRequest(&random)))
        }
    }

    static func randomRequest(_ random: inout Generator) -> RaftCommandRequest {
        let argument = (0..<random.below(300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        return RaftCommandRequest(
            session: random.number(), sequence: random.number(), acknowledged: random.number(),
            stateMachine: random.number(), function: random.number(), argument: argument)
    }

    static func outcome(_ body: () throws(WireError) -> RaftLogCommand) -> String {
        do { return "ok \(try body())" } catch { return "error \(error)" }
    }

    @Test("a log command read straight out of its bytes equals the general decoder's, and so do the errors")
    func fastDecodeMatchesTheGeneralDecoder() {
        for seed in UInt64(1)...20 {
            var random = Generator(state: seed)
            for _ in 0..<200 {
                let encoded = Wire.encodeToBytes(Self.randomCommand(&random))
                // The encoding itself, then damaged copies: cut short, one byte more, one byte changed.
                var variants = [encoded, encoded + [UInt8(truncatingIfNeeded: random.next())]]
                variants.append(Array(encoded.prefix(Int(random.below(UInt64(encoded.count))))))
                var changed = encoded
                changed[Int(random.below(UInt64(changed.count)))] = UInt8(truncatingIfNeeded: random.next())
                variants.append(changed)
                for bytes in variants {
                    let limits = WireLimits(maxBytesLength: bytes.count, maxCollectionCount: bytes.count, maxDepth: 32)
                    let fast = Self.outcome { () throws(WireError) in
                        try RaftLogCommand.decode(payload: bytes, limits: limits)
                    }
                    let general = Self.outcome { () throws(WireError) in
                        try Wire.decode(RaftLogCommand.self, fromBytes: bytes, limits: limits)
                    }
                    #expect(fast == general, "seed \(seed), bytes \(bytes)")
                }
            }
        }
    }

    @Test("non-canonical varints, a wrong argument length and a wrong batch count get the general decoder's errors")
    func fastDecodeRejectsWhatTheGeneralDecoderRejects() {
        let limits = WireLimits(maxBytesLength: 64, maxCollectionCount: 64, maxDepth: 32)
        // time 1, tag 0, session 0x80 0x00 (an overlong zero), then the rest of a user command.
        let overlong: [UInt8] = [1, 0, 0x80, 0x00, 1, 0, 1, 1, 0]
        // A user command whose argument claims 2 bytes and has 1, or claims 0 and has 1.
        let short: [UInt8] = [1, 0, 1, 1, 0, 1, 1, 2, 9]
        let long: [UInt8] = [1, 0, 1, 1, 0, 1, 1, 0, 9]
        // Batches: empty; claiming two commands and holding one; claiming more than its bytes could hold; one
        // command and a trailing byte.
        let empty: [UInt8] = [1, 6, 0]
        let missing: [UInt8] = [1, 6, 2, 1, 1, 0, 1, 1, 0]
        let huge: [UInt8] = [1, 6, 0xFF, 0xFF, 0x03, 1, 1, 0, 1, 1, 0]
        let trailing: [UInt8] = [1, 6, 1, 1, 1, 0, 1, 1, 0, 7]
        for bytes in [overlong, short, long, empty, missing, huge, trailing] {
            let fast = Self.outcome { () throws(WireError) in
                try RaftLogCommand.decode(payload: bytes, limits: limits)
            }
            #expect(fast.hasPrefix("error"), "\(bytes)")
            let general = Self.outcome { () throws(WireError) in
                try Wire.decode(RaftLogCommand.self, fromBytes: bytes, limits: limits)
            }
            #expect(fast == general)
        }
    }

    /// Raises one event per call; keeps the context of the first call and, from then on, also notifies through it.
    struct Keeper: RaftStateMachine {
        var kept: RaftApplyContext?

        mutating func apply(
            function: UInt64, argument: [UInt8], context: RaftApplyContext
        ) throws(RaftStateMachineError) -> [UInt8] {
            if let kept { kept.notify(kind: 99, payload: [0xEE]) } else { kept = context }
            for n in 0..<function { context.notify(kind: n, payload: [UInt8(truncatingIfNeeded: context.index)]) }
            return []
        }

        func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] { [] }
        func snapshot() throws(RaftStateMachineError) -> [UInt8] { [] }
        mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {}
    }

    /// The log entry at `index` (term 1, cluster time `index`) holding `body`.
    static func entry(_ index: UInt64, _ body: RaftLogCommand.Body) -> Entry {
        Entry(index: index, term: 1, payload: Wire.encodeToBytes(RaftLogCommand(time: index, body: body)))
    }

    /// A `Keeper` command (state machine 1) of `session`; its function is the number of events it raises.
    static func command(
        _ index: UInt64, events: UInt64 = 0, session: UInt64 = 0, sequence: UInt64 = 0
    ) -> Entry {
        entry(
            index,
            .user(
                RaftCommandRequest(
                    session: session, sequence: sequence, acknowledged: sequence == 0 ? 0 : sequence - 1,
                    stateMachine: 1, function: events, argument: [])))
    }

    static func apply(_ master: inout MasterStateMachine, index: UInt64, events: UInt64) -> RaftReply {
        master.apply(command(index, events: events), isLeader: true)
    }

    @Test("each command's events are its own: none left from the one before, none through a context kept from it")
    func eventsDoNotLeakBetweenCommands() throws {
        var master = MasterStateMachine()
        try master.register(Keeper(), id: 1)
        #expect(Self.apply(&master, index: 1, events: 3) == .ok(value: [], index: 1))
        #expect(master.lastEvents.map(\.event.kind) == [0, 1, 2])
        #expect(master.lastEvents.allSatisfy { $0.index == 1 && $0.event.payload == [1] })
        // The kept context of index 1 notifies during index 2: that event is not index 2's.
        #expect(Self.apply(&master, index: 2, events: 1) == .ok(value: [], index: 2))
        #expect(master.lastEvents.map(\.event.kind) == [0])
        #expect(master.lastEvents.map(\.ordinal) == [0])
        #expect(master.lastEvents.first?.event.payload == [2])
        #expect(Self.apply(&master, index: 3, events: 0) == .ok(value: [], index: 3))
        #expect(master.lastEvents.isEmpty)
        // A copy of the master (a snapshot being encoded) shares the sink until one of them applies.
        let copy = master
        #expect(Self.apply(&master, index: 4, events: 2) == .ok(value: [], index: 4))
        #expect(master.lastEvents.map(\.event.kind) == [0, 1])
        #expect(copy.lastEvents.isEmpty)
    }

    /// Raises `function` events, each carrying the bound apply index; fails after raising them when the argument is
    /// `[1]`.
    struct Raiser: RaftStateMachine {
        mutating func apply(
            function: UInt64, argument: [UInt8], context: RaftApplyContext
        ) throws(RaftStateMachineError) -> [UInt8] {
            for n in 0..<function { context.notify(kind: n, payload: Wire.encodeToBytes(RaftBindings.index)) }
            if argument == [1] { throw RaftStateMachineError(code: .rejected, message: "refused after raising") }
            return []
        }

        func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] { [] }
        func snapshot() throws(RaftStateMachineError) -> [UInt8] { [] }
        mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {}
    }

    @Test("a batch's commands share the entry's bound context: a failed command's events are dropped, ordinals go on")
    func batchSharesOneContext() throws {
        var master = MasterStateMachine()
        try master.register(Raiser(), id: 1)
        func request(events: UInt64, fails: Bool) -> RaftCommandRequest {
            RaftCommandRequest(
                session: 0, sequence: 0, acknowledged: 0, stateMachine: 1, function: events,
                argument: fails ? [1] : [])
        }
        let batch = Self.entry(
            7,
            .batch([
                request(events: 2, fails: false), request(events: 3, fails: true), request(events: 1, fails: false),
            ]))
        var replies: [RaftReply] = []
        master.apply(batch, isLeader: true, into: &replies)
        #expect(replies.count == 3)
        #expect(replies[0] == .ok(value: [], index: 7))
        if case .failure(let error) = replies[1] {
            #expect(error.code == .applicationError)
        } else {
            Issue.record("the failing command got \(replies[1])")
        }
        #expect(replies[2] == .ok(value: [], index: 7))
        // The failed command's three events are gone; the others' ordinals count across the entry.
        #expect(master.lastEvents.map(\.event.kind) == [0, 1, 0])
        #expect(master.lastEvents.map(\.ordinal) == [0, 1, 2])
        // Every command saw the entry's context bound.
        #expect(master.lastEvents.allSatisfy { $0.index == 7 && $0.event.payload == Wire.encodeToBytes(UInt64(7)) })
        // Outside an apply nothing is bound.
        #expect(RaftBindings.index == 0)
        // The next entry starts with an empty sink.
        #expect(
            master.apply(Self.entry(8, .batch([request(events: 0, fails: false)])), isLeader: true)
                == .ok(value: [], index: 8))
        #expect(master.lastEvents.isEmpty)
    }

    @Test("a session's position survives the copy-on-write of a table shared with a copy of the master")
    func sessionPositionAcrossCopyOnWrite() throws {
        var master = MasterStateMachine()
        try master.register(Keeper(), id: 1)
        #expect(
            master.apply(Self.entry(1, .openSession), isLeader: true)
                == .ok(value: Wire.encodeToBytes(UInt64(1)), index: 1))
        func command(_ sequence: UInt64, index: UInt64) -> Entry {
            Self.command(index, events: 1, session: 1, sequence: sequence)
        }
        #expect(master.apply(command(1, index: 2), isLeader: true) == .ok(value: [], index: 2))
        // A copy (a snapshot being encoded) shares the session table: the next command's touch, acknowledgement
        // and cached result copy it first, through the position looked up before.
        let copy = master
        #expect(master.apply(command(2, index: 3), isLeader: true) == .ok(value: [], index: 3))
        #expect(master.cachedResult(session: 1, sequence: 2) == .ok(value: [], index: 3))
        #expect(copy.cachedResult(session: 1, sequence: 2) == nil)
        #expect(copy.cachedResult(session: 1, sequence: 1) == .ok(value: [], index: 2))
        // A retry is answered from the table, with the first reply's index.
        #expect(master.apply(command(2, index: 4), isLeader: true) == .ok(value: [], index: 3))
    }
}
