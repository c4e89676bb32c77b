import BifrostRPC
import BifrostRaft
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The HTTP driver: bifrost-map's HTTP API over `connections` keep-alive HTTP/1.1 connections, connection `i`
/// to address `i % addresses.count`, one request in flight per connection (lanes sharing a connection take
/// turns, in arrival order).
///
/// - read: `GET /v1/kv/{key}?consistency=<level>`; 200 (a JSON body) and 404 (no such key) are successes.
/// - write, update: `PUT /v1/kv/{key}` with the raw value as the body; any 2xx is a success.
/// - read-modify-write: not supported (the API has no compare-and-swap yet; the configuration rejects ycsb-f).
/// - preload: one `PUT` per key, in order, over the given connection.
///
/// Any other status is an error of kind `http-<status>`; a connection that fails or closes is `connection`
/// (and is reopened by the next request); no answer within ``requestTimeout`` is `timeout`.
public final class HTTPDriver: LoadDriver {
    /// `bifrost-http`.
    public let system = "bifrost-http"
    /// The consistency every read asks for.
    public let consistency: ReadConsistency
    /// How long a request may wait for its response.
    public let requestTimeout: Duration
    /// The connections, opened on first use.
    let connections: [HTTPConnection]

    /// Creates the connections (opened on first use). `addresses` are `host:port` strings.
    public init(
        addresses: [String], connections count: Int, consistency: ReadConsistency,
        requestTimeout: Duration = .seconds(15), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.consistency = consistency
        self.requestTimeout = requestTimeout
        self.connections = (0..<max(count, 1)).map { index in
            let address = addresses.isEmpty ? "127.0.0.1:80" : addresses[index % addresses.count]
            return HTTPConnection(address: address, group: group, timeout: requestTimeout)
        }
    }

    /// The path of `key`: `/v1/kv/` and the key, percent-encoded (RFC 3986 unreserved characters stay).
    public static func path(of key: String) -> String {
        var path = "/v1/kv/"
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                path.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                path += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return path
    }

    /// Performs `operation` over connection `connection`.
    public func perform(_ operation: Operation, connection: Int) async throws(LoadError) -> OperationOutcome {
        let channel = connections[connection % connections.count]
        switch operation.kind {
        case .read:
            let status = try await channel.request(
                method: .GET, uri: Self.path(of: operation.key) + "?consistency=\(consistency.name)", body: nil)
            guard status == 200 || status == 404 else { throw LoadError(kind: "http-\(status)", message: "GET") }
        case .write, .update:
            let status = try await channel.request(
                method: .PUT, uri: Self.path(of: operation.key), body: operation.value)
            guard (200..<300).contains(status) else { throw LoadError(kind: "http-\(status)", message: "PUT") }
        case .readModifyWrite:
            throw LoadError(kind: "unsupported", message: "the HTTP driver has no compare-and-swap")
        }
        return .done
    }

    /// The executor of connection `connection`'s event loop: its lanes run there, so a request and its response
    /// take no hop through the cooperative thread pool (the load generator then takes less of the CPU it shares
    /// with the nodes).
    public func executor(connection: Int) async -> (any TaskExecutor)? {
        EventLoopTaskExecutor(connections[connection % connections.count].loop)
    }

    /// Writes the entries in one batch (`POST /v1/kv`, one log entry).
    public func preload(_ entries: [LoadEntry], connection: Int) async throws(LoadError) {
        let channel = connections[connection % connections.count]
        let status = try await channel.request(method: .POST, uri: "/v1/kv", body: Self.batchBody(entries))
        guard (200..<300).contains(status) else {
            throw LoadError(kind: "http-\(status)", message: "POST /v1/kv of \(entries.count) keys during the preload")
        }
    }

    /// `{"entries": [{"key": ..., "value_base64": ...}, ...]}`.
    static func batchBody(_ entries: [LoadEntry]) -> [UInt8] {
        let objects: [[String: String]] = entries.map {
            ["key": $0.key, "value_base64": Data($0.value).base64EncodedString()]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["entries": objects])) ?? Data()
        return Array(data)
    }

    /// Closes every connection.
    public func close() async {
        for connection in connections { await connection.close() }
    }
}

/// One keep-alive HTTP/1.1 connection with one request in flight; requests queue for their turn.
final class HTTPConnection: Sendable {
    /// The server's host name or address.
    let host: String
    /// The server's port.
    let port: Int
    /// The event loop the connection runs on (one of the driver's group, chosen at creation), which its lanes
    /// prefer (``HTTPDriver/executor(connection:)``).
    let loop: any EventLoop
    /// How long a request may wait for its response.
    let timeout: Duration

    private struct State {
        var channel: (any Channel)?
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    private let state = Mutex(State())

    /// A connection to `address` (`host:port` or `[v6]:port`), opened by the first request.
    init(address: String, group: any EventLoopGroup, timeout: Duration) {
        let colon = address.lastIndex(of: ":")
        var host = colon.map { String(address[..<$0]) } ?? address
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        self.port = colon.flatMap { Int(address[address.index(after: $0)...]) } ?? 80
        self.loop = group.next()
        self.timeout = timeout
    }

    /// Waits until no other request uses the connection.
    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                guard state.busy else {
                    state.busy = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    /// Hands the connection to the next waiter, or frees it.
    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiters.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }

    /// Sends one request and returns the response's status code (the body is read and dropped).
    func request(method: HTTPMethod, uri: String, body: [UInt8]?) async throws(LoadError) -> UInt {
        await acquire()
        defer { release() }
        if Task.isCancelled { throw LoadError(kind: "cancelled", message: "\(method) \(uri) was cancelled") }
        let channel = try await openChannel()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers.add(name: "Host", value: port == 80 ? host : "\(host):\(port)")
        head.headers.add(name: "Content-Length", value: String(body?.count ?? 0))
        if body != nil { head.headers.add(name: "Content-Type", value: "application/octet-stream") }
        let promise = channel.eventLoop.makePromise(of: HTTPResponse.self)
        let exchange = HTTPExchange(head: head, body: body.map { ByteBuffer(bytes: $0) }, promise: promise)
        let timeout = channel.eventLoop.scheduleTask(in: Self.timeAmount(timeout)) {
            promise.fail(HTTPDriverFailure.timeout)
            channel.close(promise: nil)
        }
        channel.writeAndFlush(exchange).whenFailure { error in promise.fail(error) }
        do {
            let response = try await promise.futureResult.get()
            timeout.cancel()
            if !response.keepAlive { forget(channel) }
            return response.status
        } catch {
            timeout.cancel()
            forget(channel)
            if case .timeout = error as? HTTPDriverFailure {
                throw LoadError(kind: "timeout", message: "\(method) \(uri) got no response within \(self.timeout)")
            }
            throw LoadError(kind: "connection", message: "\(method) \(uri) to \(host):\(port): \(error)")
        }
    }

    /// `duration` as a NIO `TimeAmount`.
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// The open channel, connecting first if there is none.
    private func openChannel() async throws(LoadError) -> any Channel {
        if let channel = state.withLock({ $0.channel }), channel.isActive { return channel }
        if state.withLock({ $0.closed }) { throw LoadError(kind: "connection", message: "the driver is closed") }
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPClientExchangeHandler())
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw LoadError(kind: "connection", message: "cannot connect to \(host):\(port): \(error)")
        }
        state.withLock { $0.channel = channel }
        return channel
    }

    /// Closes `channel` and forgets it, so that the next request reconnects.
    private func forget(_ channel: any Channel) {
        state.withLock { state in
            if let current = state.channel, current === channel { state.channel = nil }
        }
        channel.close(promise: nil)
    }

    /// Closes the connection; later requests fail.
    func close() async {
        let channel = state.withLock { state -> (any Channel)? in
            state.closed = true
            defer { state.channel = nil }
            return state.channel
        }
        if let channel { try? await channel.close().get() }
    }
}

/// A request to send and the promise of its response.
struct HTTPExchange: Sendable {
    /// The request line and headers.
    var head: HTTPRequestHead
    /// The body, if any.
    var body: ByteBuffer?
    /// Completed with the response, or failed.
    var promise: EventLoopPromise<HTTPResponse>
}

/// The parts of a response the driver uses.
struct HTTPResponse: Sendable {
    /// The status code.
    var status: UInt
    /// Whether the connection may carry the next request.
    var keepAlive: Bool
}

/// Why a request got no response.
enum HTTPDriverFailure: Error {
    /// No response within the request timeout.
    case timeout
    /// A request was written while another was pending (a bug: the connection serializes requests).
    case busy
    /// The connection closed before the response ended.
    case closed
}

/// Writes an ``HTTPExchange`` and completes its promise with the response that follows (one at a time).
final class HTTPClientExchangeHandler: ChannelDuplexHandler {
    /// Response parts from the HTTP decoder.
    typealias InboundIn = HTTPClientResponsePart
    /// Requests from the driver.
    typealias OutboundIn = HTTPExchange
    /// Request parts for the HTTP encoder.
    typealias OutboundOut = HTTPClientRequestPart

    private var pending: EventLoopPromise<HTTPResponse>?
    private var head: HTTPResponseHead?

    /// Sends the exchange's request and remembers its promise; a second request while one is pending fails.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard pending == nil else {
            exchange.promise.fail(HTTPDriverFailure.busy)
            promise?.fail(HTTPDriverFailure.busy)
            return
        }
        pending = exchange.promise
        head = nil
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if let body = exchange.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    /// Completes the pending promise at the end of the response.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
        case .body:
            break
        case .end:
            let promise = pending
            pending = nil
            if let head {
                promise?.succeed(HTTPResponse(status: head.status.code, keepAlive: head.isKeepAlive))
            } else {
                promise?.fail(HTTPDriverFailure.closed)
            }
        }
    }

    /// Fails the pending request: the connection closed.
    func channelInactive(context: ChannelHandlerContext) {
        pending?.fail(HTTPDriverFailure.closed)
        pending = nil
        context.fireChannelInactive()
    }

    /// Fails the pending request and closes the connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }
}
