import BifrostMacros
import BifrostNodeTestKit
import BifrostRaftCore
import BifrostStorage
import Foundation
import Testing

// MARK: - User state machines, written only against the public API

/// The payload of `Register.onChanged`.
struct Change: Codable, Sendable, Hashable {
    var old: String
    var new: String
}

/// An error that is not a `RaftStateMachineError`: the generated dispatch turns it into `rejected`.
struct TooManyTimes: Error, CustomStringConvertible {
    var times: Int
    var description: String { "cannot append \(times) times" }
}

@StateMachine
struct Register: Codable {
    var value: String = ""
    var writes: Int = 0

    static let onChanged = Subscription<NoPattern, Change>("onChanged")
    static let onSetTo = Subscription<String, Int>("onSetTo")  // pattern: the new value

    @Command mutating func set(_ new: String, context: RaftApplyContext) -> String {
        let old = value
        value = new
        writes += 1
        context.notify(Self.onChanged, payload: Change(old: old, new: new))
        context.notify(Self.onSetTo, pattern: new, payload: writes)
        return old
    }

    @Command mutating func reset() throws(RaftStateMachineError) {
        guard writes > 0 else { throw RaftStateMachineError(code: .rejected, message: "nothing to reset") }
        value = ""
        writes = 0
    }

    @Command mutating func append(_ suffix: String, times: Int) throws -> Int {
        guard times <= 3 else { throw TooManyTimes(times: times) }
        value += String(repeating: suffix, count: times)
        writes += 1
        return value.count
    }

    @Query func get() -> String { value }

    @Query func count(atLeast: Int) -> Bool { writes >= atLeast }
}

/// A state machine that is not `Codable` and brings its own snapshot, nested in a namespace, with nested types in
/// its signatures (the generated client is nested too, so they resolve).
enum Shop {
    @StateMachine
    struct Cart {
        struct Item: Codable, Sendable, Hashable {
            var name: String
            var quantity: Int
        }

        var items: [Item] = []

        @Command mutating func add(_ item: Item) -> Int {
            items.append(item)
            return items.count
        }

        @Query func items(named name: String?) -> [Item] { items.filter { name == nil || $0.name == name } }

        func snapshot() throws(RaftStateMachineError) -> [UInt8] { Wire.encodeToBytes(items.map(\.name)) }

        mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {
            guard let names = try? Wire.decode([String].self, fromBytes: snapshot) else {
                throw RaftStateMachineError(code: .corruptSnapshot, message: "bad cart")
            }
            items = names.map { Item(name: $0, quantity: 1) }
        }
    }
}

/// A type that is only `WireCodable` (not `Codable`): arguments and results may be either.
struct Vector2: WireCodable, Sendable, Hashable {
    var x: Int64
    var y: Int64

    func encode(to writer: inout WireWriter) {
        writer.write(x)
        writer.write(y)
    }

    init(x: Int64, y: Int64) {
        self.x = x
        self.y = y
    }

    init(from reader: inout WireReader) throws(WireError) {
        x = try reader.read(Int64.self)
        y = try reader.read(Int64.self)
    }
}

@StateMachine
struct Geometry: Codable {
    var moves = 0

    @Command mutating func move(_ point: Vector2, by offset: Int64, label: String?) -> Vector2 {
        moves += 1
        return Vector2(x: point.x + offset, y: point.y + offset)
    }

    @Query func origin(shifted: Vector2?) -> Vector2 { shifted ?? Vector2(x: 0, y: 0) }
}

// MARK: - Driving a MasterStateMachine

/// A `MasterStateMachine` with machines registered, fed committed entries one index at a time.
struct MasterDriver {
    var master = MasterStateMachine()
    var index: UInt64 = 0

    init(_ machines: [(id: UInt64, machine: any RaftStateMachine)]) throws {
        for (id, machine) in machines { try master.register(machine, id: id) }
    }

    mutating func command(_ function: UInt64, _ argument: [UInt8] = [], on stateMachine: UInt64 = 1) -> RaftReply {
        index += 1
        let request = RaftCommandRequest(
            session: 0, sequence: 0, acknowledged: 0, stateMachine: stateMachine, function: function,
            argument: argument)
        let payload = Wire.encodeToBytes(RaftLogCommand(time: 1_000 + index, body: .user(request)))
        return master.apply(Entry(index: index, term: 1, payload: payload), isLeader: true)
    }

    func query(_ function: UInt64, _ argument: [UInt8] = [], on stateMachine: UInt64 = 1) -> RaftReply {
        master.query(stateMachine: stateMachine, function: function, argument: argument, appliedIndex: index)
    }
}

/// The value of an `.ok` reply, decoded.
func decoded<Value: Decodable>(_ reply: RaftReply, as type: Value.Type = Value.self) throws -> Value {
    guard case .ok(let value, _) = reply else {
        throw RaftClientError(code: .invalidRequest, message: "expected a value, got \(reply)")
    }
    return try WireDecoder().decode(type, fromBytes: value)
}

/// The error of a `.failure` reply.
func failure(_ reply: RaftReply) -> RaftClientError? {
    guard case .failure(let error) = reply else { return nil }
    return error
}

/// The function id of `selector`, as generated (and checked against the documented scheme).
func functionID(_ selector: String, in ids: [String: UInt64]) throws -> UInt64 {
    let id = try #require(ids[selector])
    #expect(id == RPCFunctionID.of(selector))
    return id
}

// The documented argument layout: a struct with one field per parameter, named as the parameter.
private struct SetArgument: Codable { var new: String }
private struct AppendArgument: Codable {
    var suffix: String
    var times: Int
}
private struct CountArgument: Codable { var atLeast: Int }
private struct NamedArgument: Codable { var name: String? }
private struct AddArgument: Codable { var item: Shop.Cart.Item }

@Suite("@StateMachine at run time")
struct StateMachineRuntimeTests {
    @Test("ids follow RPCFunctionID.of of the full names; subscriptions are listed")
    func ids() throws {
        #expect(
            Set(Register.functionIDs.keys) == [
                "Register.set(_:context:)", "Register.reset()", "Register.append(_:times:)", "Register.get()",
                "Register.count(atLeast:)",
            ])
        for (selector, id) in Register.functionIDs { #expect(id == RPCFunctionID.of(selector)) }
        #expect(Register.subscriptionKinds == ["onChanged": Register.onChanged.kind, "onSetTo": Register.onSetTo.kind])
        #expect(Shop.Cart.functionIDs.keys.sorted() == ["Cart.add(_:)", "Cart.items(named:)"])
    }

    @Test("commands and queries run through a MasterStateMachine")
    func commandsAndQueries() throws {
        let ids = Register.functionIDs
        var driver = try MasterDriver([(1, Register())])
        let set = try functionID("Register.set(_:context:)", in: ids)
        let get = try functionID("Register.get()", in: ids)
        let count = try functionID("Register.count(atLeast:)", in: ids)
        let append = try functionID("Register.append(_:times:)", in: ids)
        let reset = try functionID("Register.reset()", in: ids)

        #expect(
            try decoded(driver.command(set, WireEncoder().encodeToBytes(SetArgument(new: "a"))), as: String.self) == "")
        #expect(
            try decoded(driver.command(set, WireEncoder().encodeToBytes(SetArgument(new: "b"))), as: String.self) == "a"
        )
        #expect(try decoded(driver.query(get), as: String.self) == "b")
        #expect(try decoded(driver.query(count, WireEncoder().encodeToBytes(CountArgument(atLeast: 2))), as: Bool.self))
        #expect(
            try !decoded(driver.query(count, WireEncoder().encodeToBytes(CountArgument(atLeast: 3))), as: Bool.self))
        let appended = driver.command(append, try WireEncoder().encodeToBytes(AppendArgument(suffix: "xy", times: 2)))
        #expect(try decoded(appended, as: Int.self) == 5)
        #expect(try decoded(driver.query(get), as: String.self) == "bxyxy")

        // A Void command's result is empty.
        guard case .ok(let value, _) = driver.command(reset) else {
            Issue.record("reset failed")
            return
        }
        #expect(value.isEmpty)
        #expect(try decoded(driver.query(get), as: String.self) == "")
    }

    @Test("queries are non-mutating: they run on a constant")
    func queriesOnAConstant() throws {
        let register = Register(value: "fixed", writes: 1)
        let bytes = try register.query(
            function: try functionID("Register.get()", in: Register.functionIDs), argument: [])
        #expect(try WireDecoder().decode(String.self, fromBytes: bytes) == "fixed")
        #expect(register.get() == "fixed")
    }

    @Test("errors: thrown, converted, unknown functions, bad arguments")
    func errors() throws {
        let ids = Register.functionIDs
        var driver = try MasterDriver([(1, Register())])

        // A typed RaftStateMachineError is the result as is (the master reports it as an application error).
        let reset = failure(driver.command(try functionID("Register.reset()", in: ids)))
        #expect(reset?.code == .applicationError)
        #expect(reset?.message == "nothing to reset")

        // Another error becomes `rejected` with its description.
        var register = Register()
        let context = RaftApplyContext(index: 1, term: 1, time: 0, isLeader: true)
        let append = try functionID("Register.append(_:times:)", in: ids)
        let tooMany = try WireEncoder().encodeToBytes(AppendArgument(suffix: "x", times: 9))
        #expect(throws: RaftStateMachineError(code: .rejected, message: "cannot append 9 times")) {
            _ = try register.apply(function: append, argument: tooMany, context: context)
        }

        // Unknown function ids, and a query id sent as a command (and back), are `functionNotFound`.
        #expect(failure(driver.command(12_345))?.code == .functionNotFound)
        #expect(failure(driver.query(12_345))?.code == .functionNotFound)
        #expect(failure(driver.command(try functionID("Register.get()", in: ids)))?.code == .functionNotFound)
        #expect(failure(driver.query(append))?.code == .functionNotFound)

        // Undecodable arguments (and an argument for a function without parameters) are `badArgument`.
        let bad: [(UInt64, [UInt8])] = [
            (append, [0xFF, 0x01]), (append, []), (try functionID("Register.reset()", in: ids), [1]),
        ]
        for (function, argument) in bad {
            do throws(RaftStateMachineError) {
                _ = try register.apply(function: function, argument: argument, context: context)
                Issue.record("a bad argument was accepted")
            } catch {
                #expect(error.code == .badArgument)
            }
        }
        let badQuery = failure(driver.query(try functionID("Register.count(atLeast:)", in: ids), [7]))
        #expect(badQuery?.code == .applicationError)
        #expect(badQuery?.message.contains("undecodable argument") == true)
        #expect(register == Register())
    }

    @Test("snapshot and restore round-trip, generated and user-provided")
    func snapshots() throws {
        let ids = Register.functionIDs
        var driver = try MasterDriver([(1, Register()), (2, Shop.Cart())])
        _ = driver.command(
            try functionID("Register.set(_:context:)", in: ids),
            try WireEncoder().encodeToBytes(SetArgument(new: "kept")))
        let add = try functionID("Cart.add(_:)", in: Shop.Cart.functionIDs)
        let pear = try WireEncoder().encodeToBytes(AddArgument(item: Shop.Cart.Item(name: "pear", quantity: 1)))
        #expect(try decoded(driver.command(add, pear, on: 2), as: Int.self) == 1)
        let image = try driver.master.snapshot()

        var restored = try MasterDriver([(1, Register()), (2, Shop.Cart())])
        try restored.master.restore(from: image)
        #expect(try decoded(restored.query(try functionID("Register.get()", in: ids)), as: String.self) == "kept")
        let items = try functionID("Cart.items(named:)", in: Shop.Cart.functionIDs)
        let all = try WireEncoder().encodeToBytes(NamedArgument(name: nil))
        #expect(
            try decoded(restored.query(items, all, on: 2), as: [Shop.Cart.Item].self) == [
                Shop.Cart.Item(name: "pear", quantity: 1)
            ])

        // The generated snapshot is the struct, encoded canonically; a corrupt image is `corruptSnapshot`.
        let register = Register(value: "v", writes: 3)
        #expect(try register.snapshot() == WireEncoder().encodeToBytes(register))
        var copy = Register()
        try copy.restore(from: try register.snapshot())
        #expect(copy == register)
        #expect(throws: RaftStateMachineError.self) { try copy.restore(from: [0xFF, 0xFF]) }
        do throws(RaftStateMachineError) {
            try copy.restore(from: [0xFF])
            Issue.record("a corrupt image was accepted")
        } catch {
            #expect(error.code == .corruptSnapshot)
        }
        #expect(copy == register)
    }
}

extension Register: Equatable {}

// MARK: - End to end

@Suite("@StateMachine end to end")
struct StateMachineEndToEndTests {
    @Test("the generated client drives a single-node cluster")
    func singleNode() async throws {
        try await SingleNodeCluster.with(stateMachines: [(1, Register()), (2, Geometry())]) { cluster in
            let client = cluster.client
            let register = RegisterClient(raft: client, stateMachine: 1)
            let changes = try await register.onChanged()
            let setToTwo = try await register.onSetTo("two")
            #expect(try await register.set("one") == "")
            #expect(try await register.set("two") == "one")
            // A subscription without a pattern sees both changes; the one with a pattern only the second.
            var seen: [Change] = []
            for try await event in changes {
                seen.append(event.value)
                if seen.count == 2 { break }
            }
            #expect(seen == [Change(old: "", new: "one"), Change(old: "one", new: "two")])
            for try await event in setToTwo {
                #expect(event.value == 2)  // the writes counter when the value became "two"
                break
            }
            #expect(try await register.get() == "two")
            #expect(try await register.get(consistency: .stale) == "two")
            #expect(try await register.count(atLeast: 2))
            #expect(try await !register.count(atLeast: 3, consistency: .lease))
            #expect(try await register.append("!", times: 2) == 5)
            try await register.reset()
            #expect(try await register.get() == "")
            await #expect(throws: RaftClientError.self) { try await register.reset() }
            do throws(RaftClientError) {
                try await register.reset()
            } catch {
                #expect(error.code == .applicationError)
                #expect(error.message == "nothing to reset")
            }
            // Arguments and results that are only WireCodable, and optional arguments, through the typed client.
            let geometry = GeometryClient(raft: client, stateMachine: 2)
            #expect(try await geometry.move(Vector2(x: 1, y: 2), by: 10, label: nil) == Vector2(x: 11, y: 12))
            #expect(try await geometry.origin(shifted: nil) == Vector2(x: 0, y: 0))
            #expect(try await geometry.origin(shifted: Vector2(x: 5, y: -5)) == Vector2(x: 5, y: -5))
            // A client of a machine registered under another id reaches nothing.
            await #expect(throws: RaftClientError.self) {
                try await Register.Client(raft: client, stateMachine: 9).get()
            }
        }
    }
}

@Suite("@StateMachine with WireCodable-only types")
struct StateMachineWireCodableTests {
    @Test("a WireCodable-only argument travels as its native bytes in a keyed field; a nil optional is left out")
    func layout() throws {
        var driver = try MasterDriver([(1, Geometry())])
        let move = try functionID("Geometry.move(_:by:label:)", in: Geometry.functionIDs)
        struct MoveArgument: Codable {
            var point: [UInt8]
            var offset: Int64
            var label: String?
        }
        let argument = try WireEncoder().encodeToBytes(
            MoveArgument(point: Wire.encodeToBytes(Vector2(x: 1, y: 1)), offset: 2, label: nil))
        guard case .ok(let result, _) = driver.command(move, argument) else {
            Issue.record("move failed")
            return
        }
        #expect(try Wire.decode(Vector2.self, fromBytes: result) == Vector2(x: 3, y: 3))
        let origin = try functionID("Geometry.origin(shifted:)", in: Geometry.functionIDs)
        guard case .ok(let none, _) = driver.query(origin, try WireEncoder().encodeToBytes([String: Int]())) else {
            Issue.record("origin failed")
            return
        }
        #expect(try Wire.decode(Vector2.self, fromBytes: none) == Vector2(x: 0, y: 0))
    }
}
