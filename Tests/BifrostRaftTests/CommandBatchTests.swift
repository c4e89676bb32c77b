import BifrostRaftCore
import BifrostWire
import NIOCore
import Synchronization
import Testing

@testable import BifrostRaft

/// Several client commands in one log entry (``RaftLogCommand/Body/batch(_:)``): packed by the leader, applied one
/// by one in order with exactly-once semantics, each answered with its own reply.
@Suite("Command batches")
struct CommandBatchTests {
    static func set(_ key: String, _ value: String, session: UInt64 = 0, sequence: UInt64 = 0) -> RaftCommandRequest {
        RaftCommandRequest(
            session: session, sequence: sequence, acknowledged: 0, stateMachine: TestMap.id, function: TestMap.set,
            argument: Wire.encodeToBytes([key, value]))
    }

    static func failing() -> RaftCommandRequest {
        RaftCommandRequest(
            session: 0, sequence: 0, acknowledged: 0, stateMachine: TestMap.id, function: TestMap.fail, argument: [])
    }

    static func entry(_ index: UInt64, _ body: RaftLogCommand.Body, time: UInt64 = 1) -> Entry {
        Entry(index: index, term: 1, payload: Wire.encodeToBytes(RaftLogCommand(time: time, body: body)))
    }

    static func master() throws -> MasterStateMachine {
        var master = MasterStateMachine()
        try master.register(TestMap(), id: TestMap.id)
        return master
    }

    static func old(_ value: String?) -> [UInt8] { Wire.encodeToBytes(value) }

    static func state(_ master: MasterStateMachine) throws -> [String?] {
        try ["a", "b", "c"].map { key in
            guard
                case .ok(let value, _) = master.query(
                    stateMachine: TestMap.id, function: TestMap.get, argument: Wire.encodeToBytes(key), appliedIndex: 0)
            else { return "query failed" }
            return try Wire.decode(String?.self, fromBytes: value)
        }
    }

    static func appliedCount(_ master: MasterStateMachine) throws -> UInt64 {
        guard
            case .ok(let value, _) = master.query(
                stateMachine: TestMap.id, function: TestMap.appliedCount, argument: [], appliedIndex: 0)
        else { return .max }
        return try Wire.decode(UInt64.self, fromBytes: value)
    }

    @Test("a batch applies its commands in order, as entries of their own would, and answers each at its index")
    func batchAppliesLikeSeparateEntries() throws {
        let requests = [Self.set("a", "1"), Self.set("a", "2"), Self.failing(), Self.set("b", "3")]
        var batched = try Self.master()
        var replies: [RaftReply] = []
        batched.apply(Self.entry(5, .batch(requests)), isLeader: true, into: &replies)

        var separate = try Self.master()
        var expected: [RaftReply] = []
        for (offset, request) in requests.enumerated() {
            separate.apply(Self.entry(5 + UInt64(offset), .user(request)), isLeader: true, into: &expected)
        }
        #expect(replies.count == 4)
        #expect(replies[0] == .ok(value: Self.old(nil), index: 5))
        #expect(replies[1] == .ok(value: Self.old("1"), index: 5))
        #expect(replies[2].failureCode == .applicationError)
        #expect(replies[3] == .ok(value: Self.old(nil), index: 5))
        // The same values and errors as one entry per command; only the index differs.
        #expect(replies.map(\.withoutIndex) == expected.map(\.withoutIndex))
        #expect(try Self.state(batched) == Self.state(separate))
        #expect(try Self.appliedCount(batched) == 4)
        // The single-reply form answers with the last command's reply.
        var again = try Self.master()
        #expect(again.apply(Self.entry(5, .batch(requests)), isLeader: true) == .ok(value: Self.old(nil), index: 5))
    }

    @Test("exactly-once inside a batch: a retry in the same entry gets the first reply and applies nothing")
    func retryWithinOneBatch() throws {
        var master = try Self.master()
        let opened = master.apply(Self.entry(1, .openSession), isLeader: true)
        #expect(opened == .ok(value: Wire.encodeToBytes(UInt64(1)), index: 1))
        var replies: [RaftReply] = []
        master.apply(
            Self.entry(
                2,
                .batch([
                    Self.set("a", "x", session: 1, sequence: 1), Self.set("a", "y", session: 1, sequence: 1),
                    Self.set("a", "z", session: 1, sequence: 2),
                ])), isLeader: true, into: &replies)
        #expect(
            replies == [
                .ok(value: Self.old(nil), index: 2), .ok(value: Self.old(nil), index: 2),
                .ok(value: Self.old("x"), index: 2),
            ])
        #expect(try Self.appliedCount(master) == 2)
        #expect(try Self.state(master) == ["z", nil, nil])
        // Only the two applications raised events; their ordinals count across the entry.
        #expect(master.lastEvents.map(\.ordinal) == [0, 1])
        #expect(master.lastEvents.allSatisfy { $0.index == 2 })
        #expect(master.lastEvents.map(\.event.pattern) == [Wire.encodeToBytes("a"), Wire.encodeToBytes("a")])
        // A later retry of sequence 2 gets the batch's reply, index included.
        #expect(
            master.apply(Self.entry(3, .user(Self.set("a", "w", session: 1, sequence: 2))), isLeader: true)
                == .ok(value: Self.old("x"), index: 2))
        #expect(try Self.appliedCount(master) == 2)
        // An unknown session fails its own command only.
        replies.removeAll()
        master.apply(
            Self.entry(4, .batch([Self.set("b", "1", session: 9, sequence: 1), Self.set("c", "2")])),
            isLeader: true, into: &replies)
        #expect(replies.map(\.failureCode) == [.sessionExpired, nil])
        #expect(try Self.state(master) == ["z", nil, "2"])
    }

    @Test("a batch entry that does not decode changes nothing and gets one invalidRequest reply")
    func undecodableBatch() throws {
        var master = try Self.master()
        var payload = Wire.encodeToBytes(
            RaftLogCommand(time: 1, body: .batch([Self.set("a", "1"), Self.set("b", "2")])))
        payload.removeLast()
        var replies: [RaftReply] = []
        master.apply(Entry(index: 1, term: 1, payload: payload), isLeader: true, into: &replies)
        #expect(replies.map(\.failureCode) == [.invalidRequest])
        #expect(try Self.appliedCount(master) == 0)
    }

    // MARK: Packing

    /// A proposal; `waits`: whether a client waits for its reply.
    static func proposal(_ body: RaftLogCommand.Body, time: UInt64, waits: Bool) -> RaftDriver.Proposal {
        RaftDriver.Proposal(time: time, body: body, reply: waits ? .handler { _ in } : nil)
    }

    @Test("the leader packs runs of client commands, bounded in count and bytes; other commands stay alone")
    func packing() throws {
        let big = RaftCommandRequest(
            session: 0, sequence: 0, acknowledged: 0, stateMachine: 1, function: 1,
            argument: [UInt8](repeating: 7, count: 100))
        let proposals = [
            Self.proposal(.user(Self.set("a", "1")), time: 1, waits: true),
            Self.proposal(.user(Self.set("b", "1")), time: 2, waits: false),
            Self.proposal(.user(Self.set("c", "1")), time: 3, waits: true),
            Self.proposal(.user(Self.set("d", "1")), time: 4, waits: true),
            Self.proposal(.openSession, time: 5, waits: true),
            Self.proposal(.closeSession(9), time: 6, waits: true),
            Self.proposal(.user(big), time: 7, waits: true),
            Self.proposal(.user(big), time: 8, waits: true),
            Self.proposal(.user(big), time: 9, waits: true),
            Self.proposal(.user(Self.set("e", "1")), time: 10, waits: false),
            Self.proposal(.user(Self.set("f", "1")), time: 10, waits: false),
            Self.proposal(.user(Self.set("g", "1")), time: 11, waits: false),
            Self.proposal(.user(Self.set("h", "1")), time: 11, waits: false),
        ]
        let entries = RaftDriver.pack(proposals, maxCommands: 3, maxBytes: 150)
        let commands = try entries.map { try Wire.decode(RaftLogCommand.self, fromBytes: $0.payload) }
        #expect(
            commands == [
                // At most three commands; a lone command before another kind stays a `.user` entry.
                RaftLogCommand(time: 3, body: .batch([Self.set("a", "1"), Self.set("b", "1"), Self.set("c", "1")])),
                RaftLogCommand(time: 4, body: .user(Self.set("d", "1"))),
                RaftLogCommand(time: 5, body: .openSession),
                RaftLogCommand(time: 6, body: .closeSession(9)),
                // Arguments of 100 bytes, then 200: past 150, the entry takes no more.
                RaftLogCommand(time: 8, body: .batch([big, big])),
                RaftLogCommand(time: 10, body: .batch([big, Self.set("e", "1"), Self.set("f", "1")])),
                RaftLogCommand(time: 11, body: .batch([Self.set("g", "1"), Self.set("h", "1")])),
            ])
        // Who waits on each entry: one reply per command of a batch (nil where nobody waits), none when nobody does.
        let shapes = entries.map { entry -> String in
            switch entry.waiter {
            case nil: "none"
            case .one: "one"
            case .batch(let targets): targets.map { $0 == nil ? "-" : "x" }.joined()
            }
        }
        #expect(shapes == ["x-x", "one", "one", "one", "xx", "x--", "none"])
        // Packing off: one entry per command.
        #expect(RaftDriver.pack(proposals, maxCommands: 1, maxBytes: 1 << 20).count == proposals.count)
    }

    @Test("a batch's waiters each get their own reply; when the entry is lost, all of them get the failure")
    func waiters() {
        let log = ReplyLog()
        func target(_ tag: Int) -> RaftReplyTarget {
            .handler { reply in log.append("\(tag):\(reply.failureCode.map { "\($0)" } ?? "ok")") }
        }
        let ok = RaftReply.ok(value: [], index: 3)
        CommandWaiter.batch([target(0), nil, target(2)]).succeed([
            ok, ok, .failure(RaftClientError(code: .busy, message: "")),
        ])
        #expect(log.lines == ["0:ok", "2:busy"])
        log.clear()
        // Fewer replies than commands (an entry that did not decode): the rest fail, never hang.
        CommandWaiter.batch([target(0), target(1)]).succeed([
            .failure(RaftClientError(code: .invalidRequest, message: ""))
        ])
        #expect(log.lines == ["0:invalidRequest", "1:invalidRequest"])
        log.clear()
        CommandWaiter.batch([target(0), target(1)]).succeed(
            all: .failure(RaftClientError(code: .notLeader, message: "")))
        #expect(log.lines == ["0:notLeader", "1:notLeader"])
    }
}

extension CommandBatchTests {
    @Test("a command kind newer than this version is recognised; every known kind and non-command bytes are not")
    func newerKinds() {
        var random = Generator(state: 7)
        for _ in 0..<500 {
            let payload = Wire.encodeToBytes(ApplyPathTests.randomCommand(&random))
            #expect(RaftLogCommand.newerKind(in: payload) == nil, "\(payload)")
        }
        #expect(RaftLogCommand.newerKind(in: [5, 7, 1, 2]) == 7)
        #expect(RaftLogCommand.newerKind(in: [0x80, 0x01, 200]) == 200)
        // Not a command at all: left to the decoder, which answers invalidRequest on every node alike.
        #expect(RaftLogCommand.newerKind(in: []) == nil)
        #expect(RaftLogCommand.newerKind(in: [5]) == nil)
        #expect(RaftLogCommand.newerKind(in: [0x80]) == nil)
    }
}

/// The same, end to end in a cluster: commands proposed in one loop tick share an entry on every node.
@Suite("Command batches in a cluster", .serialized)
struct CommandBatchClusterTests {
    /// Proposes `count` sets in one task on the leader's loop (so one process pass takes them all) and returns the
    /// replies.
    static func proposeTogether(_ count: Int, prefix: String, on member: TestMember) async throws -> [RaftReply] {
        let futures = try #require(
            try await member.inspectDriver { driver -> [EventLoopFuture<RaftReply>] in
                (0..<count).map { n in
                    let promise = driver.loop.makePromise(of: RaftReply.self)
                    driver.propose(.user(CommandBatchTests.set("\(prefix)\(n)", "v\(n)")), reply: .promise(promise))
                    return promise.futureResult
                }
            })
        var replies: [RaftReply] = []
        for future in futures { replies.append(try await future.get()) }
        return replies
    }

    @Test("commands proposed together share one entry (or several of at most maxCommandsPerEntry) on every node")
    func packedAcrossTheCluster() async throws {
        for (limit, expectedEntries) in [(256, 1), (2, 3), (1, 5)] {
            try await TestNodeCluster.with(3, tune: { $0.maxCommandsPerEntry = limit }) { cluster in
                let leader = try await cluster.waitForLeader()
                let replies = try await Self.proposeTogether(5, prefix: "k", on: cluster.member(leader))
                var indices: [UInt64] = []
                for reply in replies {
                    guard case .ok(let value, let index) = reply else {
                        Issue.record("limit \(limit): \(reply)")
                        return
                    }
                    #expect(try Wire.decode(String?.self, fromBytes: value) == nil)
                    indices.append(index)
                }
                #expect(Set(indices).count == expectedEntries, "limit \(limit): \(indices)")
                #expect(indices == indices.sorted(), "limit \(limit): \(indices)")
                let last = try #require(indices.last)
                try await cluster.waitForApplied(last)
                for member in cluster.members.values {
                    for n in 0..<5 {
                        let value = await member.node?.get("k\(n)", .sequential, minIndex: last)
                        #expect(value == .success("v\(n)"), "limit \(limit), node \(member.id), key k\(n)")
                    }
                }
            }
        }
    }
}

/// Lines appended by reply handlers.
final class ReplyLog: Sendable {
    private let state = Mutex<[String]>([])
    func append(_ line: String) { state.withLock { $0.append(line) } }
    func clear() { state.withLock { $0.removeAll() } }
    var lines: [String] { state.withLock { $0 } }
}

extension CommandBatchClusterTests {
    @Test("an entry of a kind this version cannot read halts the group on every node instead of being skipped")
    func newerKindHalts() async throws {
        try await TestNodeCluster.with(3) { cluster in
            let leader = try await cluster.waitForLeader()
            let client = cluster.client { $0.deadline = .seconds(3) }
            let (_, index) = try await client.set("before", "1")
            try await cluster.waitForApplied(index)
            // What a newer leader could write: cluster time 1, then command tag 7.
            let proposed = try await cluster.member(leader).inspectDriver { driver -> UInt64? in
                guard let range = try? driver.core.propose([[1, 7, 0]]) else { return nil }
                driver.scheduleProcess()
                return range.lowerBound
            }
            let bad = try #require(proposed ?? nil)
            #expect(bad > index)
            for member in cluster.members.values {
                let halted = try await eventually(within: .seconds(10)) {
                    try await member.inspectDriver { $0.halted }??.contains("upgrade this node") == true
                }
                #expect(halted, "node \(member.id)")
                // It stopped right before the entry: everything before it is applied, nothing after.
                #expect(try await member.inspectDriver { $0.applied } == bad - 1, "node \(member.id)")
            }
            await #expect(throws: RaftClientError.self) { _ = try await client.set("after", "2") }
            await client.close()
        }
    }
}

extension RaftReply {
    /// The failure's code (nil for a success).
    var failureCode: RaftClientError.Code? {
        if case .failure(let error) = self { return error.code }
        return nil
    }

    /// The reply with index 0 (to compare values and errors only).
    var withoutIndex: RaftReply {
        if case .ok(let value, _) = self { return .ok(value: value, index: 0) }
        return self
    }
}
