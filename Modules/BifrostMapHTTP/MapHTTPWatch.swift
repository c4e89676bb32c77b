import BifrostMap
import BifrostRaft
import BifrostWire
import HTTPTypes
import Hummingbird
import NIOCore

extension MapHTTPAPI {
    /// `Last-Event-ID`: the id of the last event an EventSource received, sent when it reconnects.
    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    /// `GET /v1/watch?key=K | prefix=P [&after=POSITION]`: the map's changes as Server-Sent Events, as this node
    /// applies them.
    ///
    /// Each event is `insert`, `update` or `delete`, with the id `index.ordinal` (its position in the log) and a
    /// JSON `data` line. The stream starts after `after` (or the `Last-Event-ID` header), else after what the node
    /// has applied; events still in the node's replay buffer are sent first. It ends with an `error` event when
    /// events were lost (`eventsLost`: resume by listing, then watch from the list's index) or the node stops.
    func watch(_ request: Request) async throws(MapHTTPError) -> Response {
        let parameters = request.uri.queryParameters
        let key = parameters["key"].map(String.init)
        let prefix = parameters["prefix"].map(String.init)
        if key != nil && prefix != nil { throw MapHTTPError(.badRequest, "give 'key' or 'prefix', not both") }
        if let key { try check(key: key) }
        var after: RaftEventPosition?
        if let text = parameters["after"].map(String.init) ?? request.headers[Self.lastEventID] {
            guard let position = RaftEventPosition(text) else {
                throw MapHTTPError(
                    .badRequest, "'after' (or Last-Event-ID) must be INDEX or INDEX.ORDINAL, not '\(text)'")
            }
            after = position
        }
        let start: RaftEventPosition
        if let after { start = after } else { start = RaftEventPosition(index: await node.info().appliedIndex) }
        let filter: RaftEventFilter
        if let key {
            filter = RaftEventFilter(ReplicatedMap.onChanged, stateMachine: stateMachine) { $0 == key }
        } else if let prefix, !prefix.isEmpty {
            filter = RaftEventFilter(ReplicatedMap.onChanged, stateMachine: stateMachine) { $0.hasPrefix(prefix) }
        } else {
            filter = RaftEventFilter(ReplicatedMap.onChanged, stateMachine: stateMachine)
        }
        let events = node.localEvents(filter, after: start, bufferLimit: configuration.watchBufferEvents)
        let stream = Self.serverSentEvents(
            events, start: start, limit: configuration.watchBufferEvents, heartbeat: configuration.watchHeartbeat)
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/event-stream", .cacheControl: "no-cache",
                HTTPField.Name("X-Accel-Buffering")!: "no",
            ],
            body: ResponseBody(asyncSequence: stream))
    }

    /// The text of the stream: a first comment naming the start, the events, a comment every `heartbeat` when
    /// idle, and a last `error` event if the events end with one. When the client falls `limit` chunks behind,
    /// the stream ends; the client resumes from the last id it received.
    static func serverSentEvents(
        _ events: AsyncThrowingStream<RaftRaisedEventRecord, any Error>, start: RaftEventPosition, limit: Int,
        heartbeat: Duration
    ) -> AsyncStream<ByteBuffer> {
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingOldest(limit))
        continuation.yield(ByteBuffer(string: ": watching after \(start)\n\n"))
        let producer = Task {
            do {
                for try await record in events {
                    guard let chunk = eventChunk(record) else { continue }
                    if case .dropped = continuation.yield(chunk) { break }
                }
            } catch let error as RaftClientError {
                let body = JSON.buffer(["code": "\(error.code)", "message": error.message])
                continuation.yield(ByteBuffer(string: "event: error\ndata: \(String(buffer: body))\n\n"))
            } catch {
                let body = JSON.buffer(["code": "internal", "message": "\(error)"])
                continuation.yield(ByteBuffer(string: "event: error\ndata: \(String(buffer: body))\n\n"))
            }
            continuation.finish()
        }
        let pinger = Task {
            while !Task.isCancelled {
                do { try await Task.sleep(for: heartbeat) } catch { return }
                continuation.yield(ByteBuffer(string: ": ping\n\n"))
            }
        }
        continuation.onTermination = { _ in
            producer.cancel()
            pinger.cancel()
        }
        return stream
    }

    /// One event of the stream, or nil for a payload that does not decode (never raised by the map).
    static func eventChunk(_ record: RaftRaisedEventRecord) -> ByteBuffer? {
        guard let change = try? WireDecoder().decode(MapChange.self, fromBytes: record.event.payload) else {
            return nil
        }
        let kind: String
        var data: [String: Any] = ["key": change.key, "index": record.index]
        switch (change.old, change.new) {
        case (nil, let new?):
            kind = "insert"
            JSON.put(new, as: "value", into: &data)
        case (let old?, let new?):
            kind = "update"
            JSON.put(new, as: "value", into: &data)
            JSON.put(old, as: "previous", into: &data)
        case (let old?, nil):
            kind = "delete"
            JSON.put(old, as: "previous", into: &data)
        case (nil, nil):
            return nil
        }
        let position = RaftEventPosition(index: record.index, ordinal: record.ordinal)
        return ByteBuffer(string: "id: \(position)\nevent: \(kind)\ndata: \(String(buffer: JSON.buffer(data)))\n\n")
    }
}
