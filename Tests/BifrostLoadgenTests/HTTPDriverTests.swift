import BifrostLoadgenKit
import BifrostRaft
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// What the in-test HTTP server saw and holds. ``reached`` yields once the server has answered `threshold`
/// requests.
final class KVServerState: Sendable {
    /// What the server holds and saw.
    struct State {
        /// The stored values by key.
        var values: [String: [UInt8]] = [:]
        /// Connections accepted so far.
        var connections = 0
        /// `METHOD uri` of every request, in order.
        var requests: [String] = []
        /// When set, every request gets this status.
        var failWith: UInt?
    }

    /// The state, shared by the server's connections and the test.
    let state = Mutex(State())
    /// The request count at which ``reached`` yields.
    let threshold: Int
    /// Yields once, at the `threshold`-th request.
    let reached: AsyncStream<Void>
    /// Feeds ``reached``.
    let signal: AsyncStream<Void>.Continuation

    /// A server state that signals after `threshold` requests.
    init(threshold: Int = .max) {
        self.threshold = threshold
        (reached, signal) = AsyncStream.makeStream(of: Void.self)
    }
}

/// A tiny keep-alive HTTP/1.1 key-value server in the shape of bifrost-map's API: `PUT /v1/kv/{key}` stores the
/// body, `GET /v1/kv/{key}` answers the value as JSON or 404.
final class KVHandler: ChannelInboundHandler {
    /// Request parts from the HTTP decoder.
    typealias InboundIn = HTTPServerRequestPart
    /// Response parts for the HTTP encoder.
    typealias OutboundOut = HTTPServerResponsePart

    /// The shared state.
    let server: KVServerState
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    /// A handler over `server`.
    init(server: KVServerState) {
        self.server = server
    }

    /// Counts the connection.
    func channelActive(context: ChannelHandlerContext) {
        server.state.withLock { $0.connections += 1 }
        context.fireChannelActive()
    }

    /// Collects a request and answers it at its end.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let uri = head.uri
        let path = String(uri.split(separator: "?", maxSplits: 1).first ?? "")
        let key = path.hasPrefix("/v1/kv/") ? String(path.dropFirst("/v1/kv/".count)) : ""
        let (status, text): (HTTPResponseStatus, String) = server.state.withLock { state in
            state.requests.append("\(head.method) \(uri)")
            if state.requests.count == server.threshold {
                server.signal.yield()
                server.signal.finish()
            }
            if let code = state.failWith { return (HTTPResponseStatus(statusCode: Int(code)), "failing") }
            switch head.method {
            case .PUT:
                state.values[key] = body
                return (.noContent, "")
            case .POST where path == "/v1/kv":
                // A batch: {"entries": [{"key": ..., "value_base64": ...}]}.
                guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                    let entries = object["entries"] as? [[String: String]]
                else { return (.badRequest, "{\"code\":\"badRequest\"}") }
                for entry in entries {
                    guard let key = entry["key"], let text = entry["value_base64"],
                        let value = Data(base64Encoded: text)
                    else { return (.badRequest, "{\"code\":\"badRequest\"}") }
                    state.values[key] = Array(value)
                }
                return (.ok, "{\"written\":\(entries.count)}")
            case .GET:
                guard let value = state.values[key] else { return (.notFound, "{\"error\":\"not found\"}") }
                return (.ok, "{\"key\":\"\(key)\",\"value\":\"\(String(decoding: value, as: UTF8.self))\"}")
            default:
                return (.methodNotAllowed, "")
            }
        }
        var responseHead = HTTPResponseHead(version: head.version, status: status)
        responseHead.headers.add(name: "Content-Length", value: String(text.utf8.count))
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if !text.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Runs `body` with the address of a fresh in-test server; always shuts the server down.
func withKVServer(threshold: Int = .max, _ body: (String, KVServerState) async throws -> Void) async throws {
    let state = KVServerState(threshold: threshold)
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(KVHandler(server: state))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    do {
        try await body("127.0.0.1:\(port)", state)
    } catch {
        try? await channel.close().get()
        throw error
    }
    try await channel.close().get()
}

@Suite("HTTP driver against an in-test NIOHTTP1 server", .timeLimit(.minutes(2)))
struct HTTPDriverTests {
    @Test("keys are percent-encoded in the path")
    func path() {
        #expect(HTTPDriver.path(of: "k000000000000042") == "/v1/kv/k000000000000042")
        #expect(HTTPDriver.path(of: "a b/ü~") == "/v1/kv/a%20b%2F%C3%BC~")
    }

    @Test("PUT stores the raw value, GET asks for the consistency, a missing key is not an error")
    func operations() async throws {
        try await withKVServer { address, server in
            let driver = HTTPDriver(addresses: [address], connections: 1, consistency: .sequential)
            let value = Array("hello".utf8)
            let write = Operation(kind: .write, keyIndex: 1, key: "k1", value: value)
            let wrote = try await driver.perform(write, connection: 0)
            #expect(wrote == .done)
            let read = Operation(kind: .read, keyIndex: 1, key: "k1", value: [])
            let readOutcome = try await driver.perform(read, connection: 0)
            #expect(readOutcome == .done)
            let missing = Operation(kind: .read, keyIndex: 2, key: "k2", value: [])
            let missingOutcome = try await driver.perform(missing, connection: 0)
            #expect(missingOutcome == .done)
            try await driver.preload([LoadEntry(key: "k3", value: [1, 2])], connection: 0)
            await driver.close()
            let seen = server.state.withLock { $0 }
            #expect(seen.values == ["k1": value, "k3": [1, 2]])
            #expect(
                seen.requests == [
                    "PUT /v1/kv/k1", "GET /v1/kv/k1?consistency=sequential", "GET /v1/kv/k2?consistency=sequential",
                    "POST /v1/kv",
                ])
            // One keep-alive connection served all four requests.
            #expect(seen.connections == 1)
        }
    }

    @Test("a connection's lanes run on an event loop, and a request resumes them there")
    func lanesOnTheConnectionLoop() async throws {
        try await withKVServer { address, _ in
            let driver = HTTPDriver(addresses: [address], connections: 2, consistency: .sequential)
            for connection in 0..<2 {
                let executor = try #require(await driver.executor(connection: connection))
                let loops = try await withTaskExecutorPreference(executor) { () async throws -> [ObjectIdentifier?] in
                    let before = MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }
                    let write = Operation(kind: .write, keyIndex: 1, key: "k", value: [1])
                    _ = try await driver.perform(write, connection: connection)
                    return [before, MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }]
                }
                #expect(loops[0] != nil)
                #expect(loops[0] == loops[1])
            }
            await driver.close()
        }
    }

    @Test("a run over two keep-alive connections: requests, no errors, exactly two connections")
    func run() async throws {
        try await withKVServer(threshold: 400) { address, server in
            var options = CommandLineOptions()
            options.protocolName = "http"
            options.http = address
            options.workload = "mixed"
            options.readRatio = 0.5
            options.clients = 4
            options.connections = 2
            options.pipeline = 2
            options.warmup = 0
            options.duration = 600
            options.keyspace = 100
            options.keySize = 4
            let configuration = try options.configuration()
            let driver = HTTPDriver(
                addresses: configuration.httpAddresses, connections: configuration.connections,
                consistency: configuration.consistency)
            // The server's threshold, not the clock, ends the run.
            let runner = LoadRunner(configuration: configuration, driver: driver)
            let task = Task { await runner.run { _ in } }
            for await _ in server.reached { break }
            task.cancel()
            let measurement = await task.value
            await driver.close()
            #expect(measurement.requests > 0)
            #expect(measurement.errors == 0)
            #expect(measurement.latency.p50 <= measurement.latency.max)
            let seen = server.state.withLock { $0 }
            #expect(seen.connections == 2)
            #expect(seen.requests.contains { $0.hasPrefix("PUT /v1/kv/k") })
            #expect(
                seen.requests.contains { $0.hasPrefix("GET /v1/kv/k") && $0.hasSuffix("?consistency=linearizable") })
        }
    }

    @Test("an error status becomes an error of kind http-<status>; the connection stays usable")
    func errorStatus() async throws {
        try await withKVServer { address, server in
            server.state.withLock { $0.failWith = 503 }
            let driver = HTTPDriver(addresses: [address], connections: 1, consistency: .linearizable)
            let write = Operation(kind: .write, keyIndex: 1, key: "k1", value: [1])
            await #expect(throws: LoadError(kind: "http-503", message: "PUT")) {
                try await driver.perform(write, connection: 0)
            }
            server.state.withLock { $0.failWith = nil }
            let outcome = try await driver.perform(write, connection: 0)
            #expect(outcome == .done)
            await driver.close()
            #expect(server.state.withLock { $0.connections } == 1)
        }
    }

    @Test("nothing listening: a connection error")
    func refused() async throws {
        // Bind and close a server to get a port nobody listens on.
        var address = ""
        try await withKVServer { bound, _ in address = bound }
        let driver = HTTPDriver(addresses: [address], connections: 1, consistency: .linearizable)
        let read = Operation(kind: .read, keyIndex: 1, key: "k1", value: [])
        do {
            _ = try await driver.perform(read, connection: 0)
            Issue.record("a request to a closed port succeeded")
        } catch {
            #expect(error.kind == "connection")
        }
        await driver.close()
    }
}
