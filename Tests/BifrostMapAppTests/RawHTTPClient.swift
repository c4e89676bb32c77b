import BifrostNodeTestKit
import Foundation
import NIOCore
import NIOPosix

/// An HTTP reply, as a test reads it.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// A deliberately small HTTP/1.1 client over a real socket: it sends exactly the bytes it is given (so tests can
/// send malformed requests too) and reads until the server closes the connection or `until` is satisfied.
enum RawHTTP {
    /// Sends `bytes` to 127.0.0.1:`port` and returns everything received until the server closes the connection,
    /// `until` returns true for what was received so far, or `timeout` passes.
    ///
    /// With `readReply` false it closes the connection right after writing (a client that goes away mid-request)
    /// and returns nothing.
    static func exchange(
        _ bytes: [UInt8], port: Int, timeout: Duration = .seconds(15), readReply: Bool = true,
        until: @escaping @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async throws -> [UInt8] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(bytes: bytes))
                    var received: [UInt8] = []
                    guard readReply else { return received }
                    do {
                        for try await buffer in inbound {
                            received += buffer.readableBytesView
                            if until(received) { break }
                        }
                    } catch {
                        // A reset after the reply counts as the end of it.
                    }
                    return received
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let received = first else {
                throw AppTestError("no complete reply from port \(port) within \(timeout)")
            }
            return received
        }
    }

    /// Sends one request with `Connection: close` and parses the reply.
    static func request(
        _ method: String, _ path: String, port: Int, body: [UInt8]? = nil, headers: [String: String] = [:]
    ) async throws -> HTTPReply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return try parse(try await exchange(Array(head.utf8) + (body ?? []), port: port))
    }

    /// Parses a complete reply (a `Content-Length` or chunked body, or one that ends at the close).
    static func parse(_ bytes: [UInt8]) throws -> HTTPReply {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw AppTestError("not an HTTP reply: \(text)") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw AppTestError("bad status line: \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        var body = String(text[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    static func dechunk(_ text: String) -> String {
        var rest = Substring(text)
        var out = ""
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let start = lineEnd.upperBound
            let chunk = rest[start...].utf8.prefix(size)
            out += String(decoding: chunk, as: UTF8.self)
            guard chunk.count == size else { break }  // The stream is still open: a partial last chunk.
            // "\r\n" is one Character: drop its two bytes through the UTF-8 view.
            rest = Substring(rest[chunk.endIndex...].utf8.dropFirst(2))
        }
        return out
    }
}
