import BifrostRaft
import BifrostRaftCore
import BifrostWire
import Testing

/// A small test state machine: a counter with an application-error function that counts its own calls (so a
/// second apply of a failing command would be visible).
private struct Counter: RaftStateMachine, Hashable {
    static let add: UInt64 = 1
    static let fail: UInt64 = 2
    static let echoContext: UInt64 = 3
    static let get: UInt64 = 10
    static let getFailures: UInt64 = 11

    var value: Int64 = 0
    var failures: UInt64 = 0

    mutating func apply(
        function: UInt64, argument: [UInt8], context: RaftApplyContext
    ) throws(RaftStateMachineError) -> [UInt8] {
        switch function {
        case Self.add:
            let delta: Int64
            do { delta = try Wire.decode(Int64.self, fromBytes: argument) } catch {
                throw RaftStateMachineError(code: .badArgument, message: "add takes an Int64")
            }
            value &+= delta
            return Wire.encodeToBytes(value)
        case Self.fail:
            failures += 1
            throw RaftStateMachineError(code: .rejected, message: "refused on purpose")
        case Self.echoContext:
            return Wire.encodeToBytes([context.index, context.term, context.time, context.isLeader ? 1 : 0])
        default:
            throw RaftStateMachineError(code: .functionNotFound, message: "no function \(function)")
        }
    }

    func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] {
        switch function {
        case Self.get: Wire.encodeToBytes(value)
        case Self.getFailures: Wire.encodeToBytes(failures)
        default: throw RaftStateMachineError(code: .functionNotFound, message: "no query \(function)")
        }
    }

    func snapshot() throws(RaftStateMachineError) -> [UInt8] {
        Wire.encodeToBytes(value) + Wire.encodeToBytes(failures)
    }

    mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {
        var reader = WireReader(bytes: snapshot)
        do {
            let value = try reader.read(Int64.self)
            let failures = try reader.read(UInt64.self)
            try reader.expectEnd(of: Counter.self)
            self.value = value
            self.failures = failures
        } catch {
            throw RaftStateMachineError(code: .corruptSnapshot, message: "counter: \(error)")
        }
    }
}

/// SplitMix64: reproducible pseudo-random numbers from a seed.
private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
    mutating func bytes(upTo count: UInt64) -> [UInt8] {
        (0..<below(count + 1)).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

/// A master plus the log position: every `run` appends one entry at the next index.
private struct Harness {
    var master: MasterStateMachine
    var index: UInt64 = 0
    var term: UInt64 = 1
    var time: UInt64 = 1_000_000

    init(settings: MasterStateMachineSettings = .init(), machines: [(UInt64, Counter)] = [(1, Counter())]) throws {
        master = MasterStateMachine(settings: settings)
        for (id, machine) in machines { try master.register(machine, id: id) }
    }

    @discardableResult
    mutating func run(_ body: RaftLogCommand.Body, at time: UInt64? = nil, isLeader: Bool = true) -> RaftReply {
        index += 1
        if let time { self.time = time }
        let payload = Wire.encodeToBytes(RaftLogCommand(time: self.time, body: body))
        return master.apply(Entry(index: index, term: term, payload: payload), isLeader: isLeader)
    }

    mutating func openSession(at time: UInt64? = nil) throws -> UInt64 {
        guard case .ok(let value, let index) = run(.openSession, at: time) else {
            Issue.record("openSession failed")
            return 0
        }
        let id = try Wire.decode(UInt64.self, fromBytes: value)
        #expect(id == index)
        return id
    }

    func counter(_ machine: UInt64 = 1) -> Int64? {
        guard
            case .ok(let value, _) = master.query(
                stateMachine: machine, function: Counter.get, argument: [], appliedIndex: index)
        else { return nil }
        return try? Wire.decode(Int64.self, fromBytes: value)
    }
}

private func add(
    _ delta: Int64, session: UInt64, sequence: UInt64, acknowledged: UInt64 = 0, machine: UInt64 = 1
) -> RaftLogCommand.Body {
    .user(
        RaftCommandRequest(
            session: session, sequence: sequence, acknowledged: acknowledged, stateMachine: machine,
            function: Counter.add, argument: Wire.encodeToBytes(delta)))
}

private func call(
    _ function: UInt64, session: UInt64, sequence: UInt64, acknowledged: UInt64 = 0, machine: UInt64 = 1
) -> RaftLogCommand.Body {
    .user(
        RaftCommandRequest(
            session: session, sequence: sequence, acknowledged: acknowledged, stateMachine: machine,
            function: function, argument: []))
}

private func code(_ reply: RaftReply) -> RaftClientError.Code? {
    if case .failure(let error) = reply { return error.code }
    return nil
}

private func ok(_ value: Int64, index: UInt64) -> RaftReply {
    .ok(value: Wire.encodeToBytes(value), index: index)
}

@Suite("MasterStateMachine")
struct MasterStateMachineTests {
    @Test func registrationRules() throws {
        var master = MasterStateMachine()
        #expect(throws: RaftStateMachineError.self) { try master.register(Counter(), id: 0) }
        try master.register(Counter(), id: 7)
        try master.register(Counter(), id: 3)
        #expect(throws: RaftStateMachineError.self) { try master.register(Counter(), id: 7) }
        #expect(master.registeredIDs == [3, 7])
        #expect(master.isRegistered(3) && !master.isRegistered(4))
    }

    @Test func openSessionReturnsTheEntryIndexAsVarint() throws {
        var h = try Harness()
        h.run(.setAddress(RaftPeer(id: 1, address: "a:1")))
        let reply = h.run(.openSession)
        #expect(reply == .ok(value: Wire.encodeToBytes(UInt64(2)), index: 2))
        #expect(h.master.sessionCount == 1)
    }

    /// The guard against the original project's bug: a retried command (the same session and sequence in a
    /// second log entry, as after a leader change) must not be applied twice.
    @Test func retriedCommandIsAppliedExactlyOnce() throws {
        var h = try Harness()
        let session = try h.openSession()
        let first = h.run(add(5, session: session, sequence: 1))
        #expect(first == ok(5, index: 2))
        h.term = 2  // a new leader re-proposes the client's retry
        let retry = h.run(add(5, session: session, sequence: 1))
        #expect(retry == first)
        #expect(h.counter() == 5)
        // The next command goes through normally, and a late retry of it is deduplicated too.
        let second = h.run(add(2, session: session, sequence: 2, acknowledged: 1))
        #expect(second == ok(7, index: 4))
        #expect(h.run(add(2, session: session, sequence: 2, acknowledged: 1)) == second)
        #expect(h.counter() == 7)
    }

    @Test func sessionZeroIsNotDeduplicated() throws {
        var h = try Harness()
        #expect(h.run(add(5, session: 0, sequence: 1)) == ok(5, index: 1))
        #expect(h.run(add(5, session: 0, sequence: 1)) == ok(10, index: 2))
        #expect(h.master.sessionCount == 0)
    }

    @Test func acknowledgedResultsAreDiscarded() throws {
        var h = try Harness()
        let s = try h.openSession()
        for sequence: UInt64 in 1...3 { h.run(add(1, session: s, sequence: sequence)) }
        #expect(h.run(add(1, session: s, sequence: 4, acknowledged: 2)) == ok(4, index: 5))
        // 1 and 2 are acknowledged: a retry gets responseDiscarded and is not applied.
        #expect(code(h.run(add(1, session: s, sequence: 2, acknowledged: 2))) == .responseDiscarded)
        #expect(code(h.run(add(1, session: s, sequence: 1))) == .responseDiscarded)
        // 3 is still cached (with its original index), and a lower acknowledged value does not lower the watermark.
        #expect(h.run(add(1, session: s, sequence: 3, acknowledged: 0)) == ok(3, index: 4))
        #expect(h.counter() == 4)
        // Acknowledging the request's own sequence number discards it before it is applied.
        #expect(code(h.run(add(1, session: s, sequence: 5, acknowledged: 5))) == .responseDiscarded)
        #expect(h.counter() == 4)
    }

    @Test func acknowledgingTheLargestSequenceDropsEverything() throws {
        var h = try Harness()
        let s = try h.openSession()
        #expect(h.run(add(1, session: s, sequence: .max)) == ok(1, index: 2))
        #expect(h.run(add(1, session: s, sequence: .max)) == ok(1, index: 2))
        #expect(code(h.run(add(1, session: s, sequence: .max, acknowledged: .max))) == .responseDiscarded)
        #expect(code(h.run(add(1, session: s, sequence: 7))) == .responseDiscarded)
        #expect(h.counter() == 1)
        // Nothing at or below the watermark lingers: the image restores (it would not with a stale entry).
        var fresh = try Harness()
        try fresh.master.restore(from: h.master.snapshot())
        #expect(try fresh.master.snapshot() == h.master.snapshot())
    }

    @Test func resultCacheIsBounded() throws {
        var settings = MasterStateMachineSettings()
        settings.maxCachedResultsPerSession = 3
        var h = try Harness(settings: settings)
        let s = try h.openSession()
        var replies: [UInt64: RaftReply] = [:]
        for sequence: UInt64 in 1...5 { replies[sequence] = h.run(add(1, session: s, sequence: sequence)) }
        #expect(h.counter() == 5)
        // The two lowest were evicted: a retry is refused, never applied a second time.
        for sequence: UInt64 in 1...2 {
            #expect(code(h.run(add(1, session: s, sequence: sequence))) == .responseDiscarded)
        }
        for sequence: UInt64 in 3...5 { #expect(h.run(add(1, session: s, sequence: sequence)) == replies[sequence]) }
        #expect(h.counter() == 5)
        // Out-of-order arrival still respects the bound: 7 then 6; 3 is evicted.
        h.run(add(1, session: s, sequence: 7))
        h.run(add(1, session: s, sequence: 6))
        #expect(code(h.run(add(1, session: s, sequence: 4))) == .responseDiscarded)
        #expect(code(h.run(add(1, session: s, sequence: 3))) == .responseDiscarded)
        #expect(h.run(add(1, session: s, sequence: 5)) == replies[5])
        #expect(h.counter() == 7)
    }

    @Test func sessionsExpireByClusterTime() throws {
        var settings = MasterStateMachineSettings()
        settings.sessionTimeoutMillis = 1_000
        var h = try Harness(settings: settings)
        let a = try h.openSession(at: 10_000)
        let b = try h.openSession(at: 10_500)
        // Exactly at the timeout the session is still alive (it expires once last-seen + timeout < time).
        #expect(h.run(add(1, session: a, sequence: 1), at: 11_000) == ok(1, index: 3))
        #expect(h.master.sessionCount == 2)
        // Any entry advances the cluster time; b (seen at 10,500) expires at 11,501, a (seen at 11,000) does not.
        h.run(.setAddress(RaftPeer(id: 4, address: "d:4")), at: 11_501)
        #expect(h.master.sessionCount == 1)
        #expect(code(h.run(add(1, session: b, sequence: 1))) == .sessionExpired)
        // Time in an entry never moves the cluster time backwards.
        h.run(add(1, session: 0, sequence: 0), at: 5)
        #expect(h.master.clusterTime == 11_501)
        #expect(h.run(add(1, session: a, sequence: 2)) == ok(3, index: 7))
        h.run(.setAddress(RaftPeer(id: 4, address: "d:4")), at: 12_502)
        #expect(h.master.sessionCount == 0)
        #expect(code(h.run(add(1, session: a, sequence: 1))) == .sessionExpired)
        #expect(h.counter() == 3)
    }

    @Test func closeSessionAndUnknownSessions() throws {
        var h = try Harness()
        let s = try h.openSession()
        #expect(h.run(add(1, session: s, sequence: 1)) == ok(1, index: 2))
        #expect(h.run(.closeSession(s)) == .ok(value: [], index: 3))
        #expect(h.master.sessionCount == 0)
        #expect(code(h.run(add(1, session: s, sequence: 1))) == .sessionExpired)
        #expect(code(h.run(add(1, session: s, sequence: 2))) == .sessionExpired)
        #expect(code(h.run(.closeSession(s))) == .sessionExpired)
        #expect(code(h.run(add(1, session: 999, sequence: 1))) == .sessionExpired)
        #expect(h.counter() == 1)
    }

    @Test func errorsAreMappedAndCached() throws {
        var h = try Harness()
        let s = try h.openSession()
        #expect(code(h.run(add(1, session: s, sequence: 1, machine: 42))) == .stateMachineNotFound)
        #expect(code(h.run(call(99, session: s, sequence: 2))) == .functionNotFound)
        let failed = h.run(call(Counter.fail, session: s, sequence: 3))
        guard case .failure(let error) = failed else {
            Issue.record("fail succeeded")
            return
        }
        #expect(error.code == .applicationError && error.message == "refused on purpose")
        // A retry of the failing command gets the cached error; the function is not called again.
        #expect(h.run(call(Counter.fail, session: s, sequence: 3)) == failed)
        let failures = h.master.query(stateMachine: 1, function: Counter.getFailures, argument: [], appliedIndex: 0)
        #expect(failures == .ok(value: Wire.encodeToBytes(UInt64(1)), index: 0))
        // Without a session, errors are not cached: the function runs each time.
        h.run(call(Counter.fail, session: 0, sequence: 0))
        h.run(call(Counter.fail, session: 0, sequence: 0))
        let after = h.master.query(stateMachine: 1, function: Counter.getFailures, argument: [], appliedIndex: 0)
        #expect(after == .ok(value: Wire.encodeToBytes(UInt64(3)), index: 0))
        #expect(code(h.run(add(1, session: 0, sequence: 0, machine: 0))) == .stateMachineNotFound)
    }

    @Test func applyContextCarriesTheEntryAndClusterTime() throws {
        var h = try Harness()
        h.term = 9
        let reply = h.run(call(Counter.echoContext, session: 0, sequence: 0), at: 123_456, isLeader: false)
        #expect(reply == .ok(value: Wire.encodeToBytes([UInt64(1), 9, 123_456, 0]), index: 1))
        h.run(.setAddress(RaftPeer(id: 1, address: "x:1")), at: 200_000)
        let later = h.run(call(Counter.echoContext, session: 0, sequence: 0), at: 150_000, isLeader: true)
        #expect(later == .ok(value: Wire.encodeToBytes([UInt64(3), 9, 200_000, 1]), index: 3))
    }

    @Test func addressBookIsReplicatedAndSeeded() throws {
        var h = try Harness()
        h.master.seedAddresses([RaftPeer(id: 1, address: "a:1"), RaftPeer(id: 2, address: "b:2")])
        #expect(h.run(.setAddress(RaftPeer(id: 2, address: "b:22"))) == .ok(value: [], index: 1))
        #expect(code(h.run(.setAddress(RaftPeer(id: 0, address: "z:0")))) == .invalidRequest)
        #expect(h.master.addressBook == [1: "a:1", 2: "b:22"])
    }

    @Test func queriesSeeAppliedStateAndDoNotMutate() throws {
        var h = try Harness()
        h.run(add(41, session: 0, sequence: 0))
        let before = try h.master.snapshot()
        #expect(
            h.master.query(stateMachine: 1, function: Counter.get, argument: [], appliedIndex: 17) == ok(41, index: 17))
        #expect(
            code(h.master.query(stateMachine: 2, function: Counter.get, argument: [], appliedIndex: 1))
                == .stateMachineNotFound)
        #expect(code(h.master.query(stateMachine: 1, function: 99, argument: [], appliedIndex: 1)) == .functionNotFound)
        #expect(try h.master.snapshot() == before)
        h.run(add(1, session: 0, sequence: 0))
        #expect(h.counter() == 42)
    }

    @Test func snapshotRestoreRoundTrip() throws {
        var h = try Harness(machines: [(1, Counter()), (2, Counter(value: 100))])
        h.master.seedAddresses([RaftPeer(id: 1, address: "a:1")])
        h.run(.setAddress(RaftPeer(id: 3, address: "[::1]:3")))
        let s1 = try h.openSession()
        let s2 = try h.openSession()
        let cached = h.run(add(5, session: s1, sequence: 1))
        h.run(add(7, session: s2, sequence: 1, machine: 2))
        h.run(add(1, session: s2, sequence: 2, acknowledged: 1, machine: 2))
        let cachedError = h.run(call(Counter.fail, session: s1, sequence: 2))
        let image = try h.master.snapshot()

        var restored = try Harness(machines: [(1, Counter()), (2, Counter(value: 100))])
        try restored.master.restore(from: image)
        restored.index = h.index
        restored.time = h.time
        #expect(try restored.master.snapshot() == image)
        #expect(restored.master.addressBook == h.master.addressBook)
        #expect(restored.master.clusterTime == h.master.clusterTime)
        #expect(restored.master.sessionCount == 2)
        for machine: UInt64 in [1, 2] {
            for function in [Counter.get, Counter.getFailures] {
                #expect(
                    restored.master.query(stateMachine: machine, function: function, argument: [], appliedIndex: 9)
                        == h.master.query(stateMachine: machine, function: function, argument: [], appliedIndex: 9))
            }
        }
        // Sessions survive: retries still get the cached results (original index) and are not applied again;
        // acknowledged ones stay discarded.
        for var node in [h, restored] {
            #expect(node.run(add(5, session: s1, sequence: 1)) == cached)
            #expect(node.run(call(Counter.fail, session: s1, sequence: 2)) == cachedError)
            #expect(code(node.run(add(7, session: s2, sequence: 1, machine: 2))) == .responseDiscarded)
            #expect(node.counter(1) == 5 && node.counter(2) == 108)
        }
        // And both continue identically.
        for var node in [h, restored] {
            #expect(node.run(add(1, session: s1, sequence: 3)) == ok(6, index: h.index + 1))
        }
    }

    @Test func snapshotIsCanonical() throws {
        var a = MasterStateMachine()
        try a.register(Counter(value: 1), id: 1)
        try a.register(Counter(value: 2), id: 2)
        a.seedAddresses([RaftPeer(id: 1, address: "a"), RaftPeer(id: 2, address: "b"), RaftPeer(id: 3, address: "c")])
        var b = MasterStateMachine()
        try b.register(Counter(value: 2), id: 2)
        try b.register(Counter(value: 1), id: 1)
        b.seedAddresses([RaftPeer(id: 3, address: "c"), RaftPeer(id: 1, address: "a"), RaftPeer(id: 2, address: "b")])
        #expect(try a.snapshot() == b.snapshot())
        #expect(try a.snapshot().first == 2)  // the version byte
        // Non-canonical images are refused (here: an overlong varint for the cluster time).
        var image = try a.snapshot()
        image.replaceSubrange(1...1, with: [0x80, 0x00])
        #expect(throws: RaftStateMachineError.self) { try b.restore(from: image) }
    }

    @Test func restoreRejectsUnregisteredMachineAtomically() throws {
        var source = try Harness(machines: [(1, Counter()), (2, Counter())])
        source.run(add(3, session: 0, sequence: 0, machine: 2))
        let image = try source.master.snapshot()

        var target = try Harness()
        target.run(add(9, session: 0, sequence: 0))
        let before = try target.master.snapshot()
        do {
            try target.master.restore(from: image)
            Issue.record("restore accepted an image with an unregistered state machine")
        } catch {
            #expect(error.code == .corruptSnapshot)
        }
        #expect(try target.master.snapshot() == before)
        #expect(target.counter() == 9)
    }

    @Test func restoreResetsAbsentMachineToInitialInstance() throws {
        var source = try Harness()
        source.run(add(3, session: 0, sequence: 0))
        let image = try source.master.snapshot()

        var target = try Harness(machines: [(1, Counter()), (2, Counter(value: 7))])
        target.run(add(93, session: 0, sequence: 0, machine: 2))
        #expect(target.counter(2) == 100)
        try target.master.restore(from: image)
        #expect(target.counter(1) == 3)
        #expect(target.counter(2) == 7)
    }

    @Test func restoreIsAtomicOnCorruptImages() throws {
        var source = try Harness(machines: [(1, Counter()), (2, Counter())])
        source.run(.setAddress(RaftPeer(id: 2, address: "b:2")))
        let s = try source.openSession()
        for sequence: UInt64 in 1...4 { source.run(add(Int64(sequence), session: s, sequence: sequence)) }
        source.run(call(Counter.fail, session: s, sequence: 5, machine: 2))
        let image = try source.master.snapshot()

        var target = try Harness(machines: [(1, Counter()), (2, Counter())])
        target.run(add(9, session: 0, sequence: 0))
        let before = try target.master.snapshot()

        func check(_ candidate: [UInt8]) throws {
            var copy = target.master
            do {
                try copy.restore(from: candidate)
                // Accepted: it must be a valid, canonical state.
                #expect(try copy.snapshot() == candidate)
            } catch {
                #expect(error.code == .corruptSnapshot)
                #expect(try copy.snapshot() == before)
            }
        }
        for length in 0..<image.count { try check(Array(image[..<length])) }
        var random = SplitMix(state: 7)
        for _ in 0..<2_000 {
            var flipped = image
            for _ in 0...random.below(3) {
                let position = Int(random.below(UInt64(flipped.count)))
                flipped[position] ^= UInt8(truncatingIfNeeded: random.below(255) + 1)
            }
            try check(flipped)
        }
        for _ in 0..<500 { try check(random.bytes(upTo: 64)) }
        // The valid image is accepted, of course.
        try target.master.restore(from: image)
        #expect(try target.master.snapshot() == image)
    }

    @Test func hostilePayloadsNeverTrapAndChangeNothing() throws {
        var h = try Harness()
        let s = try h.openSession()
        h.run(add(1, session: s, sequence: 1))
        let valid = Wire.encodeToBytes(RaftLogCommand(time: h.time, body: add(1, session: s, sequence: 2)))
        var random = SplitMix(state: 42)
        for round in 0..<3_000 {
            var payload: [UInt8]
            switch round % 3 {
            case 0: payload = random.bytes(upTo: 48)
            case 1: payload = Array(valid[..<Int(random.below(UInt64(valid.count)))])
            default:
                payload = valid
                payload[Int(random.below(UInt64(payload.count)))] ^= UInt8(truncatingIfNeeded: random.below(255) + 1)
            }
            var copy = h.master
            let before = try copy.snapshot()
            let reply = copy.apply(Entry(index: h.index + 1, term: 1, payload: payload), isLeader: true)
            if code(reply) == .invalidRequest, (try? Wire.decode(RaftLogCommand.self, fromBytes: payload)) == nil {
                #expect(try copy.snapshot() == before)
            }
        }
        // Non-normal entries are refused and change nothing.
        let before = try h.master.snapshot()
        #expect(
            code(h.master.apply(Entry(index: 9, term: 1, kind: .noop, payload: valid), isLeader: true))
                == .invalidRequest)
        #expect(try h.master.snapshot() == before)
    }

    /// A random workload on two masters, one of which restores from the other's snapshot now and then: replies
    /// and images must stay identical (expiry, eviction and the rebuilt expiry index are deterministic).
    @Test func replicasStayIdenticalAcrossRestores() throws {
        var settings = MasterStateMachineSettings()
        settings.sessionTimeoutMillis = 500
        settings.maxCachedResultsPerSession = 4
        var random = SplitMix(state: 2024)
        var a = try Harness(settings: settings)
        var b = try Harness(settings: settings)
        var sessions: [UInt64] = []
        var time: UInt64 = 1_000
        for step in 0..<3_000 {
            time += random.below(10) == 0 ? random.below(800) : random.below(20)
            let body: RaftLogCommand.Body
            switch random.below(10) {
            case 0: body = .openSession
            case 1: body = .closeSession(sessions.isEmpty ? 0 : sessions[Int(random.below(UInt64(sessions.count)))])
            case 2: body = .setAddress(RaftPeer(id: random.below(5) + 1, address: "n:\(step)"))
            default:
                let session =
                    sessions.isEmpty || random.below(8) == 0 ? 0 : sessions[Int(random.below(UInt64(sessions.count)))]
                let sequence = random.below(12)
                body = add(
                    1, session: session, sequence: sequence,
                    acknowledged: random.below(4) == 0 ? random.below(sequence + 1) : 0)
            }
            let replyA = a.run(body, at: time)
            let replyB = b.run(body, at: time)
            #expect(replyA == replyB)
            if case .openSession = body, case .ok = replyA { sessions.append(a.index) }
            if random.below(200) == 0 {
                try b.master.restore(from: a.master.snapshot())
                #expect(try b.master.snapshot() == a.master.snapshot())
            }
        }
        #expect(try a.master.snapshot() == b.master.snapshot())
        #expect(a.master.sessionCount == b.master.sessionCount)
    }
}

@Suite("MasterStateMachine: cached results for retries")
struct MasterCachedResultTests {
    @Test("cachedResult returns the applied reply of a session's sequence, and nothing for session 0 or unknown ones")
    func cachedResult() {
        var master = MasterStateMachine()
        let open = master.apply(
            Entry(index: 1, term: 1, payload: Wire.encodeToBytes(RaftLogCommand(time: 1, body: .openSession))),
            isLeader: true)
        #expect(open == .ok(value: Wire.encodeToBytes(UInt64(1)), index: 1))
        let request = RaftCommandRequest(
            session: 1, sequence: 1, acknowledged: 0, stateMachine: 9, function: 1, argument: [])
        let reply = master.apply(
            Entry(index: 2, term: 1, payload: Wire.encodeToBytes(RaftLogCommand(time: 2, body: .user(request)))),
            isLeader: true)
        #expect(master.cachedResult(session: 1, sequence: 1) == reply)
        #expect(master.cachedResult(session: 1, sequence: 2) == nil)
        #expect(master.cachedResult(session: 0, sequence: 1) == nil)
        #expect(master.cachedResult(session: 5, sequence: 1) == nil)
    }
}

/// A state machine that reports what the apply-context bindings say from inside `apply`.
struct BindingProbe: RaftStateMachine {
    mutating func apply(
        function: UInt64, argument: [UInt8], context: RaftApplyContext
    ) throws(RaftStateMachineError)
        -> [UInt8]
    {
        Wire.encodeToBytes([RaftBindings.isLeader ? 1 : 0, RaftBindings.index, RaftBindings.term])
    }
    func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] {
        Wire.encodeToBytes([RaftBindings.isLeader ? 1 : 0, RaftBindings.index])
    }
    func snapshot() throws(RaftStateMachineError) -> [UInt8] { [] }
    mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {}
}

@Suite("MasterStateMachine: apply-context bindings")
struct ApplyBindingTests {
    @Test("while a command applies, RaftBindings carry the leader flag, index and term; outside they are defaults")
    func bindingsDuringApply() throws {
        var master = MasterStateMachine()
        try master.register(BindingProbe(), id: 1)
        func entry(_ index: UInt64, term: UInt64) -> Entry {
            let request = RaftCommandRequest(
                session: 0, sequence: 0, acknowledged: 0, stateMachine: 1, function: 1, argument: [])
            return Entry(
                index: index, term: term, payload: Wire.encodeToBytes(RaftLogCommand(time: 1, body: .user(request))))
        }
        guard case .ok(let onLeader, _) = master.apply(entry(7, term: 3), isLeader: true),
            case .ok(let onFollower, _) = master.apply(entry(8, term: 4), isLeader: false),
            case .ok(let inQuery, _) = master.query(stateMachine: 1, function: 1, argument: [], appliedIndex: 8)
        else {
            Issue.record("apply failed")
            return
        }
        #expect(try Wire.decode([UInt64].self, fromBytes: onLeader) == [1, 7, 3])
        #expect(try Wire.decode([UInt64].self, fromBytes: onFollower) == [0, 8, 4])
        #expect(try Wire.decode([UInt64].self, fromBytes: inQuery) == [0, 0])
        #expect(RaftBindings.applyContext.value == nil)
        #expect(!RaftBindings.isLeader)
    }
}
