import BifrostMacros
import Testing

struct Point: Codable, Equatable, Sendable {
    var x: Int
    var y: Int
}

@Service
protocol Calculator: Sendable {
    func add(_ a: Int, _ b: Int) async throws -> Int
    func scale(point: Point, by factor: Int) async throws -> Point
    func describe(values: [String: Double]) async throws -> String
    func reset() async throws
    func fail(reason: String) async throws -> Int
}

actor MyCalculator: Calculator {
    private(set) var resets = 0

    func add(_ a: Int, _ b: Int) async throws -> Int { a + b }
    func scale(point: Point, by factor: Int) async throws -> Point { Point(x: point.x * factor, y: point.y * factor) }
    func describe(values: [String: Double]) async throws -> String {
        values.keys.sorted().map { "\($0)=\(values[$0] ?? 0)" }.joined(separator: ",")
    }
    func reset() async throws { resets += 1 }
    func fail(reason: String) async throws -> Int { throw RPCError(code: .resourceExhausted, message: reason) }
}

@Suite("@Service end to end")
struct ServiceEndToEndTests {
    @Test("the generated client and dispatch talk over a real socket and in-process", arguments: [false, true])
    func roundTrip(inProcess: Bool) async throws {
        var serverConfiguration = RPCServerConfiguration()
        serverConfiguration.registersInProcess = inProcess
        let server = try await RPCServer.start(configuration: serverConfiguration)
        let implementation = MyCalculator()
        server.router.register(CalculatorService(implementation), as: 42)
        var clientConfiguration = RPCClientConfiguration()
        clientConfiguration.inProcessShortcut = inProcess
        let rpc = RPCClient(configuration: clientConfiguration)
        let calculator = CalculatorClient(client: rpc, address: server.localAddress, serviceID: 42)

        #expect(try await calculator.add(2, 40) == 42)
        #expect(try await calculator.scale(point: Point(x: 1, y: -2), by: 3) == Point(x: 3, y: -6))
        #expect(try await calculator.describe(values: ["b": 2, "a": 1.5]) == "a=1.5,b=2.0")
        try await calculator.reset()
        #expect(await implementation.resets == 1)
        do {
            _ = try await calculator.fail(reason: "no")
            Issue.record("fail succeeded")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
            #expect(error.message == "no")
        }
        // Counted on the client: the server's count would include any stray connection from elsewhere on the
        // machine to its (ephemeral) port.
        #expect(rpc.connectionCount == (inProcess ? 0 : 1))
        await rpc.shutdown()
        await server.shutdown()
    }

    @Test("function ids are FNV-1a of Service.method(labels:), computed at compile time")
    func functionIDs() {
        #expect(CalculatorClient.functionIDs["Calculator.add(_:_:)"] == RPCFunctionID.of("Calculator.add(_:_:)"))
        #expect(
            CalculatorClient.functionIDs["Calculator.scale(point:by:)"]
                == RPCFunctionID.of("Calculator.scale(point:by:)"))
        #expect(CalculatorClient.functionIDs.count == 5)
    }
}
