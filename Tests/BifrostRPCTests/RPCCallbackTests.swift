import BifrostRPC
import BifrostWire
import NIOCore
import Synchronization
import Testing

/// Responders handed out by a callback function, for the test to answer later.
final class Responders: Sendable {
    private let waiting = Mutex<[RPCResponder]>([])

    func add(_ responder: RPCResponder) { waiting.withLock { $0.append(responder) } }

    /// Takes every responder handed out so far.
    func take() -> [RPCResponder] {
        waiting.withLock { all in
            defer { all.removeAll() }
            return all
        }
    }

    var count: Int { waiting.withLock { $0.count } }
}

/// Functions registered with `registerCallback`: they run without a task and answer through their responder.
struct CallbackService: RPCService {
    let responders: Responders

    var functions: RPCFunctionTable {
        var table = RPCFunctionTable()
        let responders = self.responders
        table.registerCallback("Cb.now", id: id("Cb.now")) { payload, _, responder in responder.succeed(payload) }
        table.registerCallback("Cb.later", id: id("Cb.later")) { _, _, responder in responders.add(responder) }
        table.registerCallback("Cb.decode", id: id("Cb.decode")) { payload, _, responder in
            responder.succeed(Wire.encode(try Wire.decode(UInt64.self, from: payload) + 1))
        }
        table.registerCallback("Cb.twice", id: id("Cb.twice")) { _, _, responder in
            responder.succeed(Wire.encode("first"))
            responder.succeed(Wire.encode("second"))
            responder.fail(RPCError(code: .handlerError, message: "third"))
        }
        table.registerCallback("Cb.fail", id: id("Cb.fail")) { _, _, responder in
            responder.fail(RPCError(code: .resourceExhausted, message: "full"))
        }
        return table
    }
}

@Suite("RPC callback functions", .serialized)
struct RPCCallbackTests {
    let responders = Responders()

    private func start(inProcess: Bool) async throws -> (RPCServer, RPCClient) {
        var configuration = RPCServerConfiguration()
        configuration.registersInProcess = inProcess
        let server = try await RPCServer.start(configuration: configuration)
        server.router.register(CallbackService(responders: responders), as: 5)
        let client = socketClient { $0.inProcessShortcut = inProcess }
        return (server, client)
    }

    private func call(
        _ client: RPCClient, _ server: RPCServer, _ name: String, _ payload: ByteBuffer = ByteBuffer(),
        timeout: Duration? = nil
    ) async throws -> ByteBuffer {
        try await client.call(server.localAddress, service: 5, function: id(name), payload: payload, timeout: timeout)
    }

    /// Waits until `count` responders are waiting (the calls reached the server).
    private func waitForResponders(_ count: Int) async throws {
        for _ in 0..<2000 where responders.count < count { try await Task.sleep(for: .milliseconds(5)) }
        #expect(responders.count == count)
    }

    @Test(
        "answers given later, from another thread and in reverse order, reach their own callers",
        arguments: [false, true])
    func answeredLater(inProcess: Bool) async throws {
        let (server, client) = try await start(inProcess: inProcess)
        try await withThrowingTaskGroup(of: (Int, UInt64).self) { group in
            for index in 0..<50 {
                group.addTask {
                    let reply = try await call(client, server, "Cb.later")
                    return (index, try Wire.decode(UInt64.self, from: reply))
                }
            }
            try await waitForResponders(50)
            let waiting = responders.take()
            // Answer from a thread that is neither the connection's loop nor a caller's: each responder gets its
            // position, so a reply that reached the wrong caller would not match the order below.
            let answers = Task.detached {
                for (position, responder) in waiting.enumerated().reversed() {
                    responder.succeed(Wire.encode(UInt64(position)))
                }
            }
            await answers.value
            var positions = Set<UInt64>()
            for try await (_, position) in group { positions.insert(position) }
            #expect(positions == Set(0..<50))
        }
        await client.shutdown()
        await server.shutdown()
    }

    @Test(
        "an immediate answer, a thrown decode error, a typed failure, and only the first of several answers",
        arguments: [false, true])
    func immediateAnswers(inProcess: Bool) async throws {
        let (server, client) = try await start(inProcess: inProcess)
        #expect(try await Wire.decode(String.self, from: call(client, server, "Cb.now", Wire.encode("x"))) == "x")
        let incremented = try await call(client, server, "Cb.decode", Wire.encode(UInt64(41)))
        #expect(try Wire.decode(UInt64.self, from: incremented) == 42)
        #expect(
            await errorCode { _ = try await call(client, server, "Cb.decode", ByteBuffer(bytes: [0x80])) }
                == .badRequest)
        #expect(await errorCode { _ = try await call(client, server, "Cb.fail") } == .resourceExhausted)
        for _ in 0..<3 {
            #expect(try await Wire.decode(String.self, from: call(client, server, "Cb.twice")) == "first")
        }
        let still = try await call(client, server, "Cb.now", Wire.encode("still"))
        #expect(try Wire.decode(String.self, from: still) == "still")
        await client.shutdown()
        await server.shutdown()
    }

    @Test(
        "a caller that gives up gets deadlineExceeded; the answer given afterwards is dropped",
        arguments: [false, true])
    func lateAnswer(inProcess: Bool) async throws {
        let (server, client) = try await start(inProcess: inProcess)
        // Connect first, so that the deadline covers the call and not the connection (which, with the whole suite
        // running on two cores, once took longer than the deadline: the call never reached the server).
        #expect(try await Wire.decode(String.self, from: call(client, server, "Cb.now", Wire.encode("up"))) == "up")
        #expect(
            await errorCode { _ = try await call(client, server, "Cb.later", timeout: .milliseconds(300)) }
                == .deadlineExceeded)
        try await waitForResponders(1)
        for responder in responders.take() { responder.succeed(Wire.encode(UInt64(7))) }
        #expect(try await Wire.decode(String.self, from: call(client, server, "Cb.now", Wire.encode("ok"))) == "ok")
        await client.shutdown()
        await server.shutdown()
    }
}
