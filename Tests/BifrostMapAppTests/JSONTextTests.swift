import BifrostRPC
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BifrostMapHTTP

@Suite("HTTP API: JSON responses")
struct JSONTextTests {
    /// Foundation's text for `object`, as the API wrote it before.
    static func foundation(_ object: [String: Any]) throws -> String {
        String(
            decoding: try JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
            as: UTF8.self)
    }

    static func text(_ object: [String: Any]) -> String? {
        var text = JSONText()
        return text.write(object) ? String(decoding: text.bytes, as: UTF8.self) : nil
    }

    @Test("the API's response shapes come out exactly as Foundation wrote them")
    func sameAsFoundation() throws {
        let peer: [String: Any] = ["id": UInt64(2), "address": "127.0.0.1:7002"]
        let objects: [[String: Any]] = [
            ["key": "user/1", "index": UInt64(42), "value": "hello"],
            ["key": "k", "index": UInt64(7), "previous_base64": "AAEC/w==", "value": "x y/z \"quoted\" \\ é ✓"],
            [
                "entries": [["key": "p/1", "value": "a"], ["key": "p/2", "value_base64": "AA=="]], "index": UInt64(9),
                "next": NSNull(),
            ],
            ["written": 3, "inserted": 2, "index": UInt64(12)],
            ["key": "k", "swapped": true, "index": UInt64(1)],
            [
                "group": UInt64(0), "node": peer, "role": "leader", "term": UInt64(3), "voters": [peer, peer],
                "learners": [[String: Any]](), "leader": NSNull(),
            ],
            ["code": "noLeader", "message": "no leader is known", "role": "follower", "term": UInt64(5)],
            ["status": "ok", "applied_index": UInt64(18_446_744_073_709_551_615), "delta": Int64(-3)],
            ["tabs\tand\nnewlines\r\u{08}\u{0C}\u{01}\u{1F}": "\u{7F}", "empty": "", "nested": ["a": ["b": [1, 2]]]],
        ]
        for object in objects {
            #expect(Self.text(object) == (try Self.foundation(object)))
        }
    }

    @Test("booleans and integers keep their types; unknown or non-finite values are refused")
    func types() {
        #expect(Self.text(["b": true, "f": false, "i": 1, "z": 0]) == #"{"b":true,"f":false,"i":1,"z":0}"#)
        #expect(Self.text(["d": 1.5]) == #"{"d":1.5}"#)
        #expect(Self.text(["d": Double.infinity]) == nil)
        #expect(Self.text(["when": Date(timeIntervalSince1970: 0)]) == nil)
        // A refused value falls back to Foundation, which cannot write a date either.
        #expect(
            String(buffer: JSON.buffer(["when": Date(timeIntervalSince1970: 0)]))
                == #"{"code":"internal","message":"unencodable response"}"#)
    }
}

@Suite("HTTP API: work that grows with the request stays off the event loop")
struct OffLoopTests {
    @Test("a task that prefers the node's loop runs there, and offLoop moves the endpoint's work off it")
    func offLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = EventLoopTaskExecutor(loop)
        let placements = try await withTaskExecutorPreference(executor) { () async throws(MapHTTPError) in
            let before = loop.inEventLoop
            let inside = try await MapHTTPAPI.offLoop { () async throws(MapHTTPError) in loop.inEventLoop }
            return [before, inside, loop.inEventLoop]
        }
        #expect(placements == [true, false, true])
        try await group.shutdownGracefully()
    }
}
