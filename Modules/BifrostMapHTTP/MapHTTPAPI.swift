import BifrostMap
import BifrostRaft
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// The HTTP API of a `bifrost-map` node: the replicated map as JSON over HTTP, a Server-Sent Events watch, the
/// cluster's state, health and Prometheus metrics. `docs/http-api.md` describes every endpoint.
///
/// Writes and `linearizable`/`lease` reads go through a ``RaftClient`` that prefers this node's own process, so
/// a request to a follower is forwarded to the leader; `sequential` and `stale` reads are served by this node
/// (``RaftClientConfiguration/preferredNode``). Watches read this node's own applied events
/// (``RaftNode/localEvents(_:after:bufferLimit:)``), on any node.
public struct MapHTTPAPI: Sendable {
    let node: RaftNode
    let client: RaftClient
    let map: MapClient
    let stateMachine: UInt64
    let configuration: MapHTTPConfiguration
    let registry: PrometheusCollectorRegistry?

    /// Creates the API of `node`.
    ///
    /// - Parameters:
    ///   - client: the client writes and reads go through; give it this node's address first and
    ///     ``RaftClientConfiguration/preferredNode`` set to it.
    ///   - stateMachine: the id the map is registered under.
    ///   - registry: the registry `GET /metrics` emits (nil: 404).
    public init(
        node: RaftNode, client: RaftClient, stateMachine: UInt64 = ReplicatedMap.defaultID,
        configuration: MapHTTPConfiguration = MapHTTPConfiguration(), registry: PrometheusCollectorRegistry? = nil
    ) {
        self.node = node
        self.client = client
        self.map = MapClient(raft: client, stateMachine: stateMachine)
        self.stateMachine = stateMachine
        self.configuration = configuration
        self.registry = registry
    }

    /// The router with every endpoint, JSON errors and request metrics.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(JSONErrorMiddleware())
        router.middlewares.add(MetricsMiddleware())
        router.get("/v1/kv/**") { request, _ in try await get(request) }
        router.put("/v1/kv/**") { request, _ in try await put(request) }
        router.delete("/v1/kv/**") { request, _ in try await delete(request) }
        router.get("/v1/kv") { request, _ in
            try await Self.offLoop { () async throws(MapHTTPError) in
                try await list(request)
            }
        }
        router.post("/v1/kv") { request, _ in
            try await Self.offLoop { () async throws(MapHTTPError) in
                try await putAll(request)
            }
        }
        router.post("/v1/cas/**") { request, _ in
            try await Self.offLoop { () async throws(MapHTTPError) in
                try await compareAndSwap(request)
            }
        }
        router.get("/v1/watch") { request, _ in try await watch(request) }
        router.get("/v1/cluster") { _, _ in await cluster() }
        router.get("/health") { _, _ in await health() }
        router.get("/metrics") { _, _ in try await Self.offLoop { () throws(MapHTTPError) in try metrics() } }
        return router
    }

    /// Runs `body` on the global concurrent executor, whatever executor the calling task prefers. The endpoints
    /// whose work grows with the request (a batch put's or a compare-and-swap's JSON body of up to
    /// ``MapHTTPConfiguration/maxBodyBytes``, a page of up to ``MapHTTPConfiguration/maxListLimit`` entries, the
    /// metrics) use it, so that a server whose tasks prefer the node's event loop (`bifrost-map` runs them there,
    /// saving a thread hop per request) never parses or encodes a large body on that loop.
    static func offLoop<T: Sendable>(
        _ body: () async throws(MapHTTPError) -> T
    ) async throws(MapHTTPError) -> T {
        try await withTaskExecutorPreference(globalConcurrentExecutor, operation: body)
    }

    // MARK: Keys and values

    func get(_ request: Request) async throws(MapHTTPError) -> Response {
        let key = try key(of: request, after: "/v1/kv/")
        let consistency = try consistency(request)
        let (value, index) = try await run { () async throws(RaftClientError) in
            try await map.get(key: key, consistency: consistency)
        }
        guard let value else {
            throw MapHTTPError(.keyNotFound, "no key '\(key)'", extra: ["index": index])
        }
        if request.uri.queryParameters["raw"] != nil {
            var headers: HTTPFields = [.contentType: "application/octet-stream"]
            headers[Self.indexHeader] = "\(index)"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: value)))
        }
        var body: [String: Any] = ["key": key, "index": index]
        JSON.put(value, as: "value", into: &body)
        return JSON.response(body, headers: [Self.indexHeader: "\(index)"])
    }

    func put(_ request: Request) async throws(MapHTTPError) -> Response {
        let key = try key(of: request, after: "/v1/kv/")
        let value = try await body(of: request, limit: configuration.maxValueBytes, what: "value")
        let (previous, index) = try await run { () async throws(RaftClientError) in
            try await map.set(key: key, value: value)
        }
        var body: [String: Any] = ["key": key, "index": index]
        if let previous { JSON.put(previous, as: "previous", into: &body) }
        return JSON.response(body, headers: [Self.indexHeader: "\(index)"])
    }

    func delete(_ request: Request) async throws(MapHTTPError) -> Response {
        let key = try key(of: request, after: "/v1/kv/")
        let (previous, index) = try await run { () async throws(RaftClientError) in
            try await map.remove(key: key)
        }
        guard let previous else { throw MapHTTPError(.keyNotFound, "no key '\(key)'", extra: ["index": index]) }
        var body: [String: Any] = ["key": key, "index": index]
        JSON.put(previous, as: "previous", into: &body)
        return JSON.response(body, headers: [Self.indexHeader: "\(index)"])
    }

    func compareAndSwap(_ request: Request) async throws(MapHTTPError) -> Response {
        let key = try key(of: request, after: "/v1/cas/")
        let object = try JSON.object(try await body(of: request, limit: configuration.maxBodyBytes, what: "body"))
        let expected: [UInt8]?
        switch try JSON.bytes("expected", in: object) {
        case .absent: throw MapHTTPError(.badRequest, "'expected' is required (null: the key must be absent)")
        case .null: expected = nil
        case .value(let bytes): expected = bytes
        }
        let new: [UInt8]?
        switch try JSON.bytes("new", in: object) {
        case .absent: throw MapHTTPError(.badRequest, "'new' is required (null: remove the key)")
        case .null: new = nil
        case .value(let bytes): new = bytes
        }
        if let new, new.count > configuration.maxValueBytes {
            throw MapHTTPError(.tooLarge, "the value is over \(configuration.maxValueBytes) bytes")
        }
        let (swap, index) = try await run { () async throws(RaftClientError) in
            try await map.compareAndSwap(key: key, expected: expected, new: new)
        }
        guard swap.swapped else {
            var extra: [String: any Sendable] = ["index": index]
            if let current = swap.current {
                let (name, value) = JSON.field(current, as: "current")
                extra[name] = value
            }
            throw MapHTTPError(.casFailed, "'\(key)' does not hold the expected value", extra: extra)
        }
        return JSON.response(["key": key, "swapped": true, "index": index], headers: [Self.indexHeader: "\(index)"])
    }

    func list(_ request: Request) async throws(MapHTTPError) -> Response {
        let parameters = request.uri.queryParameters
        let prefix = parameters["prefix"].map(String.init) ?? ""
        let after = parameters["after"].map(String.init)
        var limit = configuration.defaultListLimit
        if let text = parameters["limit"] {
            guard let value = Int(text), value >= 1 else {
                throw MapHTTPError(.badRequest, "'limit' must be a positive integer")
            }
            limit = min(value, configuration.maxListLimit)
        }
        let consistency = try consistency(request)
        let (page, index) = try await run { () async throws(RaftClientError) in
            try await map.list(prefix: prefix, after: after, limit: limit, consistency: consistency)
        }
        let entries: [[String: Any]] = page.entries.map { entry in
            var object: [String: Any] = ["key": entry.key]
            JSON.put(entry.value, as: "value", into: &object)
            return object
        }
        var body: [String: Any] = ["entries": entries, "index": index]
        body["next"] = page.next ?? NSNull()
        return JSON.response(body, headers: [Self.indexHeader: "\(index)"])
    }

    func putAll(_ request: Request) async throws(MapHTTPError) -> Response {
        let object = try JSON.object(try await body(of: request, limit: configuration.maxBodyBytes, what: "body"))
        guard let items = object["entries"] as? [Any] else {
            throw MapHTTPError(.badRequest, "'entries' must be an array of {\"key\", \"value\"} objects")
        }
        var entries: [MapEntry] = []
        entries.reserveCapacity(items.count)
        for (position, item) in items.enumerated() {
            guard let entry = item as? [String: Any], let key = entry["key"] as? String else {
                throw MapHTTPError(.badRequest, "entries[\(position)] must be an object with a string 'key'")
            }
            try check(key: key)
            guard case .value(let value) = try JSON.bytes("value", in: entry) else {
                throw MapHTTPError(.badRequest, "entries[\(position)] needs a 'value' (or 'value_base64')")
            }
            guard value.count <= configuration.maxValueBytes else {
                throw MapHTTPError(
                    .tooLarge, "entries[\(position)]: the value is over \(configuration.maxValueBytes) bytes")
            }
            entries.append(MapEntry(key: key, value: value))
        }
        let (inserted, index) = try await run { () async throws(RaftClientError) in
            try await map.putAll(entries)
        }
        return JSON.response(
            ["written": entries.count, "inserted": inserted, "index": index], headers: [Self.indexHeader: "\(index)"])
    }

    // MARK: Cluster

    func cluster() async -> Response {
        let info = await node.info()
        func peer(_ peer: RaftPeer) -> [String: Any] { ["id": peer.id, "address": peer.address] }
        var body: [String: Any] = [
            "group": info.group, "node": peer(info.node), "role": info.role, "term": info.term,
            "commit_index": info.commitIndex, "applied_index": info.appliedIndex, "last_index": info.lastIndex,
            "snapshot_index": info.snapshotIndex, "voters": info.voters.map(peer), "learners": info.learners.map(peer),
        ]
        body["leader"] = info.leader.map(peer) ?? NSNull()
        return JSON.response(body)
    }

    func health() async -> Response {
        let info = await node.info()
        let leader: RaftPeer? = info.role == "leader" ? info.node : info.leader
        guard info.role != "stopped", let leader else {
            return MapHTTPError(
                .noLeader, info.role == "stopped" ? "the node is stopped" : "no leader is known",
                extra: ["role": info.role, "term": info.term], retryAfter: configuration.retryAfterSeconds
            ).response()
        }
        return JSON.response([
            "status": "ok", "role": info.role, "term": info.term, "leader": leader.id,
            "applied_index": info.appliedIndex,
        ])
    }

    func metrics() throws(MapHTTPError) -> Response {
        guard let registry else { throw MapHTTPError(.notFound, "metrics are not enabled on this node") }
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    // MARK: Helpers

    /// `X-Bifrost-Index`: the log index a reply reflects.
    static let indexHeader = HTTPField.Name("X-Bifrost-Index")!

    /// The key: the percent-decoded rest of the path after `prefix`.
    func key(of request: Request, after prefix: String) throws(MapHTTPError) -> String {
        let path = request.uri.path
        guard path.hasPrefix(prefix) else { throw MapHTTPError(.badRequest, "no key in the path") }
        let raw = path.dropFirst(prefix.count)
        guard let key = String(raw).removingPercentEncoding else {
            throw MapHTTPError(.badRequest, "the key is not valid percent-encoded UTF-8")
        }
        try check(key: key)
        return key
    }

    func check(key: String) throws(MapHTTPError) {
        guard !key.isEmpty else { throw MapHTTPError(.badRequest, "the key is empty") }
        guard key.utf8.count <= configuration.maxKeyBytes else {
            throw MapHTTPError(.tooLarge, "the key is over \(configuration.maxKeyBytes) bytes")
        }
    }

    func consistency(_ request: Request) throws(MapHTTPError) -> ReadConsistency {
        guard let text = request.uri.queryParameters["consistency"] else { return .linearizable }
        switch text {
        case "linearizable": return .linearizable
        case "lease": return .lease
        case "sequential": return .sequential
        case "stale": return .stale
        default:
            throw MapHTTPError(
                .badRequest, "'consistency' must be linearizable, lease, sequential or stale, not '\(text)'")
        }
    }

    func body(of request: Request, limit: Int, what: String) async throws(MapHTTPError) -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw MapHTTPError(.tooLarge, "the \(what) is over \(limit) bytes")
        }
        var request = request
        do {
            var buffer = try await request.collectBody(upTo: limit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch is NIOTooManyBytesError {
            throw MapHTTPError(.tooLarge, "the \(what) is over \(limit) bytes")
        } catch {
            throw MapHTTPError(.badRequest, "the body could not be read: \(error)")
        }
    }

    /// Runs a cluster operation; returns its result and the log index of its reply, or throws its error mapped to
    /// HTTP.
    func run<Value: Sendable>(
        _ body: () async throws(RaftClientError) -> Value
    ) async throws(MapHTTPError) -> (Value, UInt64) {
        do {
            return try await RaftClient.withReplyIndex(body)
        } catch {
            throw MapHTTPError.from(error, retryAfter: configuration.retryAfterSeconds)
        }
    }
}
