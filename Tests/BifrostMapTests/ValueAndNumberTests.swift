import BifrostMap
import BifrostRaftCore
import Testing

/// A `MasterStateMachine` with one machine registered under id 1, fed entries one index at a time.
private struct Driver {
    var master = MasterStateMachine()
    var index: UInt64 = 0
    let ids: [String: UInt64]

    init(_ machine: any RaftStateMachine, ids: [String: UInt64]) throws {
        try master.register(machine, id: 1)
        self.ids = ids
    }

    private func id(_ selector: String) throws -> UInt64 {
        let id = try #require(ids[selector], "no function \(selector)")
        #expect(id == RPCFunctionID.of(selector))
        return id
    }

    mutating func command(_ selector: String, _ argument: some Encodable) throws -> RaftReply {
        index += 1
        let request = RaftCommandRequest(
            session: 0, sequence: 0, acknowledged: 0, stateMachine: 1, function: try id(selector),
            argument: try WireEncoder().encodeToBytes(argument))
        let payload = Wire.encodeToBytes(RaftLogCommand(time: 1_000 + index, body: .user(request)))
        return master.apply(Entry(index: index, term: 1, payload: payload), isLeader: true)
    }

    mutating func command<Result: Decodable>(_ selector: String, _ argument: some Encodable) throws -> Result {
        try Self.decoded(command(selector, argument))
    }

    func query<Result: Decodable>(_ selector: String) throws -> Result {
        try Self.decoded(master.query(stateMachine: 1, function: try id(selector), argument: [], appliedIndex: index))
    }

    static func decoded<Value: Decodable>(_ reply: RaftReply) throws -> Value {
        guard case .ok(let value, _) = reply else {
            throw RaftClientError(code: .invalidRequest, message: "expected a value, got \(reply)")
        }
        return try WireDecoder().decode(Value.self, fromBytes: value)
    }

    /// The payloads of the last command's events of `kind`, decoded.
    func events<Payload: Decodable>(_ kind: UInt64, as type: Payload.Type) throws -> [Payload] {
        for (ordinal, record) in master.lastEvents.enumerated() {
            #expect(record.index == index && record.stateMachine == 1 && record.ordinal == UInt32(ordinal))
            #expect(record.event.kind == kind)
        }
        return try master.lastEvents.map { try WireDecoder().decode(type, fromBytes: $0.event.payload) }
    }
}

private struct NewArgument<Value: Codable>: Codable { var new: Value }
private struct DeltaArgument: Codable { var delta: Int64 }
private struct SwapArgument: Codable {
    var expected: Int64
    var new: Int64
}

@Suite("ReplicatedValue and ReplicatedNumber through a MasterStateMachine")
struct ValueAndNumberTests {
    @Test("ReplicatedValue: set returns the old value, get, onChanged with old and new, snapshot round trip")
    func value() throws {
        #expect(Set(ReplicatedValue.functionIDs.keys) == ["ReplicatedValue.set(_:context:)", "ReplicatedValue.get()"])
        var driver = try Driver(ReplicatedValue(), ids: ReplicatedValue.functionIDs)
        let set = "ReplicatedValue.set(_:context:)"
        #expect(try driver.query("ReplicatedValue.get()") == [UInt8]())
        #expect(try driver.command(set, NewArgument(new: [UInt8]([1, 2]))) == [UInt8]())
        #expect(
            try driver.events(ReplicatedValue.onChanged.kind, as: ValueChange.self) == [
                ValueChange(old: [], new: [1, 2])
            ])
        #expect(try driver.command(set, NewArgument(new: [UInt8]([3]))) == [UInt8]([1, 2]))
        #expect(
            try driver.events(ReplicatedValue.onChanged.kind, as: ValueChange.self) == [
                ValueChange(old: [1, 2], new: [3])
            ])
        #expect(try driver.query("ReplicatedValue.get()") == [UInt8]([3]))

        let image = try driver.master.snapshot()
        var restored = try Driver(ReplicatedValue(), ids: ReplicatedValue.functionIDs)
        try restored.master.restore(from: image)
        #expect(try restored.query("ReplicatedValue.get()") == [UInt8]([3]))
        var copy = ReplicatedValue()
        try copy.restore(from: try ReplicatedValue().snapshot())
        #expect(copy == ReplicatedValue())
        do throws(RaftStateMachineError) {
            try copy.restore(from: [0xFF])
            Issue.record("a corrupt image was accepted")
        } catch {
            #expect(error.code == .corruptSnapshot)
        }
    }

    @Test("ReplicatedNumber: set, get, addAndGet, getAndAdd, compareAndSwap, overflow, onChanged")
    func number() throws {
        #expect(
            Set(ReplicatedNumber.functionIDs.keys) == [
                "ReplicatedNumber.set(_:context:)", "ReplicatedNumber.addAndGet(_:context:)",
                "ReplicatedNumber.getAndAdd(_:context:)", "ReplicatedNumber.compareAndSwap(expected:new:context:)",
                "ReplicatedNumber.get()",
            ])
        var driver = try Driver(ReplicatedNumber(), ids: ReplicatedNumber.functionIDs)
        let kind = ReplicatedNumber.onChanged.kind
        let get = "ReplicatedNumber.get()"
        #expect(try driver.query(get) == Int64(0))
        #expect(try driver.command("ReplicatedNumber.set(_:context:)", NewArgument(new: Int64(5))) == Int64(0))
        #expect(try driver.events(kind, as: NumberChange.self) == [NumberChange(old: 0, new: 5)])
        #expect(try driver.command("ReplicatedNumber.addAndGet(_:context:)", DeltaArgument(delta: 3)) == Int64(8))
        #expect(try driver.events(kind, as: NumberChange.self) == [NumberChange(old: 5, new: 8)])
        #expect(try driver.command("ReplicatedNumber.getAndAdd(_:context:)", DeltaArgument(delta: -10)) == Int64(8))
        #expect(try driver.events(kind, as: NumberChange.self) == [NumberChange(old: 8, new: -2)])
        #expect(try driver.query(get) == Int64(-2))
        // Adding 0 and setting the same number change nothing and raise nothing.
        #expect(try driver.command("ReplicatedNumber.addAndGet(_:context:)", DeltaArgument(delta: 0)) == Int64(-2))
        #expect(driver.master.lastEvents.isEmpty)
        // Compare-and-swap: a mismatch fails and raises nothing; a match swaps.
        let cas = "ReplicatedNumber.compareAndSwap(expected:new:context:)"
        #expect(try driver.command(cas, SwapArgument(expected: 1, new: 100)) == false)
        #expect(driver.master.lastEvents.isEmpty)
        #expect(try driver.command(cas, SwapArgument(expected: -2, new: 100)) == true)
        #expect(try driver.events(kind, as: NumberChange.self) == [NumberChange(old: -2, new: 100)])
        // Overflow is rejected and leaves the number as it was.
        _ = try driver.command("ReplicatedNumber.set(_:context:)", NewArgument(new: Int64.max - 1)) as Int64
        let overflow = try driver.command("ReplicatedNumber.addAndGet(_:context:)", DeltaArgument(delta: 2))
        guard case .failure(let error) = overflow else {
            Issue.record("an overflow was accepted: \(overflow)")
            return
        }
        #expect(error.code == .applicationError)
        #expect(driver.master.lastEvents.isEmpty)
        #expect(try driver.query(get) == Int64.max - 1)
        #expect(try driver.command("ReplicatedNumber.getAndAdd(_:context:)", DeltaArgument(delta: 1)) == Int64.max - 1)
        #expect(try driver.query(get) == Int64.max)

        let image = try driver.master.snapshot()
        var restored = try Driver(ReplicatedNumber(), ids: ReplicatedNumber.functionIDs)
        try restored.master.restore(from: image)
        #expect(try restored.query(get) == Int64.max)
    }
}
