import BifrostMacros
import Testing

@Suite("@StateMachine events")
struct StateMachineEventTests {
    @Test("a command's context is the apply context: notify raises the declared subscriptions, tagged by entry")
    func notify() throws {
        var driver = try MasterDriver([(1, Register())])
        let set = try #require(Register.functionIDs["Register.set(_:context:)"])
        struct Argument: Codable { var new: String }
        _ = driver.command(set, try WireEncoder().encodeToBytes(Argument(new: "x")))
        #expect(
            driver.master.lastEvents == [
                RaftRaisedEventRecord(
                    stateMachine: 1, index: 1, ordinal: 0,
                    event: RaftRaisedEvent(
                        kind: Register.onChanged.kind, pattern: [],
                        payload: try WireEncoder().encodeToBytes(Change(old: "", new: "x")))),
                RaftRaisedEventRecord(
                    stateMachine: 1, index: 1, ordinal: 1,
                    event: RaftRaisedEvent(
                        kind: Register.onSetTo.kind, pattern: try WireEncoder().encodeToBytes("x"),
                        payload: try WireEncoder().encodeToBytes(1))),
            ])
        #expect(Register.subscriptionKinds["onSetTo"] == RPCFunctionID.of("onSetTo"))
        // A command that throws raises nothing.
        let reset = try #require(Register.functionIDs["Register.reset()"])
        _ = driver.command(reset)
        _ = driver.command(reset)
        #expect(driver.master.lastEvents.isEmpty)
    }
}
