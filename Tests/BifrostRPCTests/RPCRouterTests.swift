import BifrostRPC
import BifrostWire
import NIOCore
import Testing

struct EchoService: RPCService {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused by the handler" }
    }

    var functions: RPCFunctionTable {
        var table = RPCFunctionTable()
        table.register("Echo.say") { payload, _ in payload }
        table.register("Echo.upper") { payload, _ in
            let text = try WireDecoder().decode(String.self, from: payload)
            return Wire.encode(text.uppercased())
        }
        table.register("Echo.fail") { _, _ in throw Refused() }
        table.register("Echo.typed") { _, _ in throw RPCError(code: .resourceExhausted, message: "busy") }
        return table
    }
}

@Suite("RPC router")
struct RPCRouterTests {
    @Test("function ids are the FNV-1a hash of Service.method, stable across builds")
    func functionIDs() {
        #expect(RPCFunctionID.of("") == 0xCBF2_9CE4_8422_2325)
        #expect(RPCFunctionID.of("a") == 0xAF63_DC4C_8601_EC8C)
        #expect(RPCFunctionID.of("Echo.say") != RPCFunctionID.of("Echo.upper"))
    }

    @Test("calls reach the registered service and function")
    func dispatch() async throws {
        let router = RPCRouter()
        router.register(EchoService(), as: 7)
        let payload = ByteBuffer(bytes: [1, 2, 3])
        #expect(
            try await router.dispatch(service: 7, function: RPCFunctionID.of("Echo.say"), payload: payload) == payload)
        let upper = try await router.dispatch(
            service: 7,
            function: RPCFunctionID.of("Echo.upper"),
            payload: Wire.encode("hi")
        )
        #expect(try Wire.decode(String.self, from: upper) == "HI")
    }

    @Test("unknown ids, bad requests and handler errors are typed")
    func errors() async {
        let router = RPCRouter()
        router.register(EchoService(), as: 7)
        await #expect(code(router, 8, "Echo.say") == .serviceNotFound)
        await #expect(code(router, 7, "Echo.nothing") == .functionNotFound)
        await #expect(code(router, 7, "Echo.upper", payload: ByteBuffer(bytes: [9])) == .badRequest)
        await #expect(code(router, 7, "Echo.fail") == .handlerError)
        await #expect(code(router, 7, "Echo.typed") == .resourceExhausted)
        router.unregister(7)
        #expect(!router.contains(7))
        await #expect(code(router, 7, "Echo.say") == .serviceNotFound)
    }

    private func code(
        _ router: RPCRouter,
        _ service: UInt64,
        _ function: String,
        payload: ByteBuffer = ByteBuffer()
    ) async -> RPCError.Code? {
        do {
            _ = try await router.dispatch(service: service, function: RPCFunctionID.of(function), payload: payload)
            return nil
        } catch {
            return error.code
        }
    }
}
