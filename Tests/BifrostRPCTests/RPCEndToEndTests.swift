import BifrostRPC
import BifrostWire
import NIOCore
import NIOPosix
import Testing

/// Real sockets on 127.0.0.1 with ephemeral ports. Every test shuts down what it starts.
@Suite("RPC over sockets", .serialized)
struct RPCEndToEndTests {
    let gate = Gate()
    let probe = Probe()

    func startServer(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ configure: (inout RPCServerConfiguration) -> Void = { _ in }
    ) async throws -> RPCServer {
        var configuration = RPCServerConfiguration()
        configuration.registersInProcess = false
        configure(&configuration)
        let server = try await RPCServer.start(configuration: configuration, group: group)
        server.router.register(TestService(gate: gate, probe: probe), as: 2)
        server.router.register(EchoService(), as: 1)
        return server
    }

    @Test("several services share one port and one connection; unknown ids are typed errors")
    func severalServices() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        let echoed = try await client.call(address, service: 1, function: id("Echo.say"), payload: Wire.encode("hi"))
        #expect(try Wire.decode(String.self, from: echoed) == "hi")
        let doubled = try await client.call(
            address, service: 2, function: id("Test.double"), payload: Wire.encode(UInt64(21)))
        #expect(try Wire.decode(UInt64.self, from: doubled) == 42)
        #expect(
            await errorCode { _ = try await client.call(address, service: 9, function: 1, payload: ByteBuffer()) }
                == .serviceNotFound)
        #expect(
            await errorCode { _ = try await client.call(address, service: 2, function: 1, payload: ByteBuffer()) }
                == .functionNotFound)
        #expect(
            await errorCode {
                _ = try await client.call(
                    address, service: 2, function: id("Test.double"), payload: ByteBuffer(bytes: [0x80]))
            } == .badRequest)
        #expect(
            await errorCode {
                _ = try await client.call(address, service: 1, function: id("Echo.fail"), payload: ByteBuffer())
            } == .handlerError)
        #expect(client.connectionCount == 1)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("connections take the loops of a client's group in turn")
    func connectionsSpreadOverLoops() async throws {
        let server = try await startServer()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var configuration = RPCClientConfiguration()
        configuration.inProcessShortcut = false
        // Four clients, one connection each, as the load generator opens them: they alternate between the two
        // loops (connecting used to advance the round robin twice, which put all of them on one loop).
        let clients = (0..<4).map { _ in RPCClient(configuration: configuration, group: group) }
        var loops: [ObjectIdentifier] = []
        for client in clients {
            let executor = try await client.executor(for: server.localAddress)
            loops.append(ObjectIdentifier(executor.eventLoop as AnyObject))
        }
        #expect(Set(loops).count == 2)
        #expect(loops[0] != loops[1] && loops[1] != loops[2] && loops[2] != loops[3])
        for client in clients { await client.shutdown() }
        await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("calls with a completion handler: before and over an established connection, and to nobody")
    func completionCalls() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        func call(_ to: RPCAddress, _ text: String) async -> Result<ByteBuffer, RPCError> {
            await withCheckedContinuation { continuation in
                client.call(to, service: 1, function: id("Echo.say"), payload: Wire.encode(text)) { result in
                    continuation.resume(returning: result)
                }
            }
        }
        // The first call connects (through a task); the next ones use the connection directly.
        for text in ["first", "second", "third"] {
            let reply = try await call(address, text).get()
            #expect(try Wire.decode(String.self, from: reply) == text)
        }
        #expect(client.connectionCount == 1)
        // Server errors and an unreachable address come back as results, not crashes or hangs.
        let failed = await withCheckedContinuation { continuation in
            client.call(address, service: 9, function: 1, payload: ByteBuffer()) { continuation.resume(returning: $0) }
        }
        #expect(throws: RPCError.self) { try failed.get() }
        let port = server.localAddress.port
        await server.shutdown()
        guard case .failure(let error) = await call(try #require(RPCAddress("127.0.0.1:\(port)")), "gone") else {
            Issue.record("a call to a stopped server succeeded")
            return
        }
        #expect(error.code == .unavailable)
        await client.shutdown()
    }

    @Test("a task that prefers the connection's executor runs on the connection's event loop, and its calls work")
    func connectionExecutor() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        let executor = try await client.executor(for: address)
        let (onLoop, reply) = try await Task(executorPreference: executor) {
            let reply = try await client.call(address, service: 1, function: id("Echo.say"), payload: Wire.encode("x"))
            return (executor.eventLoop.inEventLoop, reply)
        }.value
        #expect(onLoop)
        #expect(try Wire.decode(String.self, from: reply) == "x")
        #expect(client.connectionCount == 1)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("10,000 concurrent calls over one connection each get their own reply", arguments: [true, false])
    func tenThousandCalls(handlersOnEventLoop: Bool) async throws {
        // A group of its own: this test keeps its loop busy for seconds, and the suites that run beside it share
        // the singleton loops (it once held up a RaftClient test's calls for over 5 s).
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await startServer(group: group) { $0.runsHandlersOnEventLoop = handlersOnEventLoop }
        let client = socketClient(group: group)
        let address = server.localAddress
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for value in 0..<UInt64(10_000) {
                group.addTask {
                    let reply = try await client.call(
                        address,
                        service: 2,
                        function: id("Test.double"),
                        payload: Wire.encode(value)
                    )
                    return try Wire.decode(UInt64.self, from: reply) == value * 2 ? 0 : 1
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        #expect(client.connectionCount == 1)
        await client.shutdown()
        await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("a later call completes while an earlier one is still running (out-of-order responses)")
    func outOfOrder() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        let slow = Task {
            try await client.call(address, service: 2, function: id("Test.gated"), payload: Wire.encode("slow"))
        }
        await probe.waitUntilEntered(1)
        let fast = try await client.call(address, service: 1, function: id("Echo.say"), payload: Wire.encode("fast"))
        #expect(try Wire.decode(String.self, from: fast) == "fast")
        await gate.open()
        #expect(try Wire.decode(String.self, from: try await slow.value) == "slow")
        #expect(client.connectionCount == 1)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a deadline fails the call, the late reply is dropped, and the connection keeps working")
    func deadline() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        let code = await errorCode {
            _ = try await client.call(
                address, service: 2, function: id("Test.gated"), payload: ByteBuffer(), timeout: .milliseconds(50))
        }
        #expect(code == .deadlineExceeded)
        await gate.open()  // the handler now finishes; its reply has nobody to go to
        let echoed = try await client.call(address, service: 1, function: id("Echo.say"), payload: Wire.encode("after"))
        #expect(try Wire.decode(String.self, from: echoed) == "after")
        #expect(client.connectionCount == 1)
        await client.shutdown()
        await server.shutdown()
    }

    @Test(
        "the server cancels a handler when the caller's timeout passes, even if no cancel frame arrives",
        .timeLimit(.minutes(1))
    )
    func serverSideTimeout() async throws {
        let server = try await startServer()
        let (raw, _) = try await rawConnection(to: server.localAddress)
        var request = ByteBuffer()
        RPCFrame.request(
            id: 1,
            service: 2,
            function: id("Test.sleepUntilCancelled"),
            timeoutMicros: 50_000,
            payload: ByteBuffer()
        ).write(to: &request)
        try await raw.writeAndFlush(request)
        await probe.waitUntilEntered(1)
        await probe.waitUntilLeft(1)  // the handler's sleep was cancelled by the server's deadline timer
        #expect(await probe.running == 0)
        try await raw.close()
        await server.shutdown()
    }

    @Test("task cancellation cancels the call")
    func cancellation() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        let call = Task {
            try await client.call(address, service: 2, function: id("Test.gated"), payload: ByteBuffer())
        }
        await probe.waitUntilEntered(1)
        call.cancel()
        do {
            _ = try await call.value
            Issue.record("a cancelled call succeeded")
        } catch let error as RPCError {
            #expect(error.code == .cancelled)
        }
        await gate.open()
        await client.shutdown()
        await server.shutdown()
    }

    @Test("the client fails fast while a server is down and reconnects after it restarts")
    func restart() async throws {
        let first = try await startServer()
        let address = first.localAddress
        let client = socketClient {
            $0.initialReconnectBackoff = .milliseconds(5)
            $0.maxReconnectBackoff = .milliseconds(20)
        }
        _ = try await client.call(address, service: 1, function: id("Echo.say"), payload: Wire.encode("one"))
        await first.shutdown()
        #expect(
            await errorCode {
                _ = try await client.call(address, service: 1, function: id("Echo.say"), payload: ByteBuffer())
            } == .unavailable)

        let second = try await startServer { $0.address = address }
        var reply: ByteBuffer?
        for _ in 0..<400 where reply == nil {
            do {
                reply = try await client.call(
                    address, service: 1, function: id("Echo.say"), payload: Wire.encode("two"))
            } catch {
                #expect(error.code == .unavailable)
                try await Task.sleep(for: .milliseconds(10))  // a bounded retry while the backoff expires
            }
        }
        #expect(try reply.map { try Wire.decode(String.self, from: $0) } == "two")
        await client.shutdown()
        await second.shutdown()
    }

    @Test("calls to a server in the same process skip the socket")
    func inProcessShortcut() async throws {
        let server = try await startServer { $0.registersInProcess = true }
        let client = RPCClient()
        let echoed = try await client.call(
            server.localAddress, service: 1, function: id("Echo.say"), payload: Wire.encode("local"))
        #expect(try Wire.decode(String.self, from: echoed) == "local")
        var pushed: [UInt64] = []
        for try await message in try await client.stream(
            server.localAddress, service: 2, function: id("Test.count"), payload: Wire.encode(UInt64(5)))
        {
            pushed.append(try Wire.decode(UInt64.self, from: message))
        }
        #expect(pushed == [0, 1, 2, 3, 4])
        #expect(
            await errorCode {
                _ = try await client.call(
                    server.localAddress, service: 2, function: id("Test.gated"), payload: ByteBuffer(),
                    timeout: .milliseconds(20))
            } == .deadlineExceeded)
        #expect(client.connectionCount == 0)
        await gate.open()
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a server pushes messages to the caller over its connection, in order", arguments: [true, false])
    func serverPush(handlersOnEventLoop: Bool) async throws {
        let server = try await startServer { $0.runsHandlersOnEventLoop = handlersOnEventLoop }
        let client = socketClient()
        var pushed: [UInt64] = []
        let stream = try await client.stream(
            server.localAddress, service: 2, function: id("Test.count"), payload: Wire.encode(UInt64(1000)))
        for try await message in stream { pushed.append(try Wire.decode(UInt64.self, from: message)) }
        #expect(pushed == Array(0..<1000))

        var beforeFailure: [UInt64] = []
        do {
            for try await message in try await client.stream(
                server.localAddress, service: 2, function: id("Test.countThenFail"), payload: ByteBuffer())
            {
                beforeFailure.append(try Wire.decode(UInt64.self, from: message))
            }
            Issue.record("the failing stream ended normally")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted, "\(error)")
        }
        #expect(beforeFailure == [1])
        await client.shutdown()
        await server.shutdown()
    }

    @Test("graceful shutdown refuses new calls and lets in-flight calls finish")
    func gracefulShutdown() async throws {
        let server = try await startServer()
        let client = socketClient()
        let address = server.localAddress
        let inFlight = Task {
            try await client.call(address, service: 2, function: id("Test.gated"), payload: Wire.encode("done"))
        }
        await probe.waitUntilEntered(1)
        let stopping = Task { await server.shutdown() }
        while server.isRunning { await Task.yield() }
        #expect(
            await errorCode {
                _ = try await client.call(address, service: 1, function: id("Echo.say"), payload: ByteBuffer())
            } == .unavailable)
        await gate.open()
        #expect(try Wire.decode(String.self, from: try await inFlight.value) == "done")
        await stopping.value
        #expect(server.connectionCount == 0)
        await client.shutdown()
    }

    @Test("at the concurrency limit the server stops reading instead of queueing without bound")
    func backpressure() async throws {
        let server = try await startServer { $0.maxConcurrentCallsPerConnection = 4 }
        let client = socketClient()
        let address = server.localAddress
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    _ = try await client.call(address, service: 2, function: id("Test.gated"), payload: ByteBuffer())
                }
            }
            await probe.waitUntilEntered(4)
            await gate.open()
            try await group.waitForAll()
        }
        #expect(await probe.entered == 40)
        #expect(await probe.peak <= 4)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a peer that stops answering is detected by keepalive pings")
    func keepalive() async throws {
        // A server that accepts connections and never reads from them: a half-open peer.
        let blackHole = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = try #require(blackHole.localAddress?.port)
        let client = socketClient {
            $0.keepaliveInterval = .milliseconds(100)
            $0.keepaliveTimeout = .milliseconds(100)
        }
        do {
            _ = try await client.call(
                RPCAddress(host: "127.0.0.1", port: port), service: 1, function: 1, payload: ByteBuffer(),
                timeout: .seconds(60))
            Issue.record("a call to a black hole succeeded")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("keepalive"))
        }
        await client.shutdown()
        try await blackHole.close()
    }

    @Test(
        "hostile bytes close only their own connection",
        arguments: [
            [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3],  // a length far above the limit
            [0x00, 0x00, 0x00, 0x00],  // an empty frame
            [0x00, 0x00, 0x00, 0x02, 0x63, 0x01],  // an unknown kind
            [0x00, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00],  // a server-side frame from a client
            [0x00, 0x00, 0x00, 0x10, 0x01, 0x01],  // a frame cut short, then the client goes away
        ] as [[UInt8]]
    )
    func hostileBytes(bytes: [UInt8]) async throws {
        let server = try await startServer { $0.maxFrameSize = 1 << 20 }
        let client = socketClient()
        _ = try await client.call(server.localAddress, service: 1, function: id("Echo.say"), payload: ByteBuffer())
        let (raw, _) = try await rawConnection(to: server.localAddress)
        try await raw.writeAndFlush(ByteBuffer(bytes: bytes))
        if bytes.count == 6 && bytes[3] == 0x10 {
            try await raw.close(mode: .output)
        }
        #expect(await closes(raw))
        // The server and its other connection carry on.
        let echoed = try await client.call(
            server.localAddress, service: 1, function: id("Echo.say"), payload: Wire.encode("alive"))
        #expect(try Wire.decode(String.self, from: echoed) == "alive")
        await client.shutdown()
        await server.shutdown()
    }

    @Test("an oversized frame is answered with resourceExhausted before the close")
    func oversizedReply() async throws {
        let server = try await startServer { $0.maxFrameSize = 1024 }
        let (raw, collector) = try await rawConnection(to: server.localAddress)
        try await raw.writeAndFlush(ByteBuffer(bytes: [0x00, 0x10, 0x00, 0x00]))
        #expect(await closes(raw))
        var received = collector.bytes
        var decoder = RPCFrameDecoder()
        let frame = try decoder.decode(buffer: &received)
        guard case .failure(0, let error) = frame else {
            Issue.record("expected a connection-level failure, got \(String(describing: frame))")
            return
        }
        #expect(error.code == .resourceExhausted)
        await server.shutdown()
    }

    @Test("connections beyond the limit are closed on accept")
    func connectionLimit() async throws {
        let server = try await startServer { $0.maxConnections = 1 }
        let (first, _) = try await rawConnection(to: server.localAddress)
        while server.connectionCount < 1 { await Task.yield() }
        let (second, _) = try await rawConnection(to: server.localAddress)
        #expect(await closes(second))
        #expect(first.isActive)
        try await first.close()
        await server.shutdown()
    }
}
