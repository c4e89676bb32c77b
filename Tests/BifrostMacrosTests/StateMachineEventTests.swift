import BifrostMacros
import Testing

@testable import BifrostRaft

// The master does not expose the events an apply raises; the internal event sink does (hence @testable here only,
// away from the state machines, which use the public API).
@Suite("@StateMachine events")
struct StateMachineEventTests {
    @Test("a command's context is the apply context: notify raises the declared subscriptions")
    func notify() throws {
        var register = Register()
        let sink = RaftEventSink()
        let context = RaftApplyContext(index: 7, term: 1, time: 0, isLeader: true, sink: sink)
        let set = try #require(Register.functionIDs["Register.set(_:context:)"])
        struct Argument: Codable { var new: String }
        _ = try register.apply(
            function: set, argument: WireEncoder().encodeToBytes(Argument(new: "x")), context: context)
        #expect(
            sink.events == [
                RaftRaisedEvent(
                    kind: Register.onChanged.kind, pattern: [],
                    payload: try WireEncoder().encodeToBytes(Change(old: "", new: "x"))),
                RaftRaisedEvent(
                    kind: Register.onSetTo.kind, pattern: try WireEncoder().encodeToBytes("x"),
                    payload: try WireEncoder().encodeToBytes(1)),
            ])
        #expect(Register.subscriptionKinds["onSetTo"] == RPCFunctionID.of("onSetTo"))
    }

    @Test("the generated subscription methods call RaftClient.subscribe (still unavailable)")
    func subscribe() async throws {
        let client = RaftClient(seeds: [])
        let register = RegisterClient(raft: client, stateMachine: 1)
        await #expect(throws: RaftClientError.self) { _ = try await register.onChanged() }
        await #expect(throws: RaftClientError.self) { _ = try await register.onSetTo("x") }
        await client.close()
    }
}
