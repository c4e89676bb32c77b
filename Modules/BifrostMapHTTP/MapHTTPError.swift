import BifrostRaft
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// An HTTP API error: a status and a JSON body `{"code": ..., "message": ...}` (plus extra fields, e.g. the current
/// value of a failed compare-and-swap).
public struct MapHTTPError: Error, Sendable {
    /// The error kinds of the HTTP API, each with its status.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The code's name in the JSON body.
        public let name: String
        /// The HTTP status it is sent with.
        public let status: HTTPResponse.Status

        /// 400: a malformed request (bad JSON, a bad parameter, an empty key).
        public static let badRequest = Code(name: "badRequest", status: .badRequest)
        /// 404: the key does not exist.
        public static let keyNotFound = Code(name: "keyNotFound", status: .notFound)
        /// 404: no such endpoint.
        public static let notFound = Code(name: "notFound", status: .notFound)
        /// 405: the endpoint does not take this method.
        public static let methodNotAllowed = Code(name: "methodNotAllowed", status: .methodNotAllowed)
        /// 409: a compare-and-swap found another value.
        public static let casFailed = Code(name: "casFailed", status: .conflict)
        /// 413: a key, value or body over its limit.
        public static let tooLarge = Code(name: "tooLarge", status: .contentTooLarge)
        /// 503: no leader right now (an election), or the cluster cannot be reached; retry after `Retry-After`.
        public static let noLeader = Code(name: "noLeader", status: .serviceUnavailable)
        /// 503: the cluster could not be reached in time.
        public static let unavailable = Code(name: "unavailable", status: .serviceUnavailable)
        /// 504: the operation did not complete in time (a write may still be applied).
        public static let timeout = Code(name: "timeout", status: .gatewayTimeout)
        /// 500: anything else.
        public static let internalError = Code(name: "internal", status: .internalServerError)

        /// The name.
        public var description: String { name }
    }

    /// The kind of error.
    public var code: Code
    /// What went wrong, for people.
    public var message: String
    /// More fields for the JSON body.
    public var extra: [String: any Sendable]
    /// Seconds to wait before a retry (`Retry-After`), for 503s.
    public var retryAfter: Int?

    /// Creates an error.
    public init(_ code: Code, _ message: String, extra: [String: any Sendable] = [:], retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.extra = extra
        self.retryAfter = retryAfter
    }

    /// The error's HTTP response.
    public func response() -> Response {
        var body: [String: Any] = ["code": code.name, "message": message]
        for (key, value) in extra { body[key] = value }
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        return JSON.response(body, status: code.status, headers: headers)
    }

    /// The HTTP error for a cluster client error.
    static func from(_ error: RaftClientError, retryAfter: Int) -> MapHTTPError {
        switch error.code {
        case .noLeader, .notLeader, .busy, .sessionExpired:
            return MapHTTPError(.noLeader, "\(error.code): \(error.message)", retryAfter: retryAfter)
        case .unavailable:
            return MapHTTPError(.unavailable, error.message, retryAfter: retryAfter)
        case .timeout:
            return MapHTTPError(.timeout, error.message)
        case .invalidRequest:
            return MapHTTPError(.badRequest, error.message)
        default:
            return MapHTTPError(.internalError, "\(error.code): \(error.message)")
        }
    }
}

/// Turns every error a handler (or the router) throws into a JSON error response, so that no error reaches the
/// client as an empty body, and none takes the process down.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as MapHTTPError {
            return error.response()
        } catch let error as any HTTPResponseError {
            let code: MapHTTPError.Code
            switch error.status {
            case .notFound: code = .notFound
            case .methodNotAllowed: code = .methodNotAllowed
            case .contentTooLarge: code = .tooLarge
            case .badRequest: code = .badRequest
            default: code = MapHTTPError.Code(name: "http\(error.status.code)", status: error.status)
            }
            let message =
                error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : "\(error)"
            return MapHTTPError(code, message).response()
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return MapHTTPError(.internalError, "\(error)").response()
        }
    }
}

/// JSON bodies (the API's values are either UTF-8 text or base64). Responses are written by ``JSONText``;
/// requests are parsed by `JSONSerialization`.
enum JSON {
    /// A JSON response.
    static func response(
        _ object: [String: Any], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]
    )
        -> Response
    {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: buffer(object)))
    }

    /// One line of JSON (sorted keys, no trailing newline).
    static func buffer(_ object: [String: Any]) -> ByteBuffer {
        var text = JSONText()
        if text.write(object) { return ByteBuffer(bytes: text.bytes) }
        // A value of a type the writer does not know: Foundation's serializer, as before.
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data(#"{"code":"internal","message":"unencodable response"}"#.utf8)
        return ByteBuffer(bytes: data)
    }

    /// Parses a request body as a JSON object.
    static func object(_ body: [UInt8]) throws(MapHTTPError) -> [String: Any] {
        let data = Data(body)
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw MapHTTPError(.badRequest, "the body is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else {
            throw MapHTTPError(.badRequest, "the body must be a JSON object")
        }
        return object
    }

    /// Writes `bytes` into `object` as `name` (valid UTF-8 text) or `name_base64`.
    static func put(_ bytes: [UInt8], as name: String, into object: inout [String: Any]) {
        let (key, value) = field(bytes, as: name)
        object[key] = value
    }

    /// The JSON field of `bytes`: `name` with the text when it is valid UTF-8, else `name_base64` with base64.
    static func field(_ bytes: [UInt8], as name: String) -> (key: String, value: String) {
        if let text = String(validating: bytes, as: UTF8.self) { return (name, text) }
        return (name + "_base64", Data(bytes).base64EncodedString())
    }

    /// Reads `name` (text) or `name_base64` from a JSON object: `.absent` when neither is there, `.null` for JSON
    /// null.
    static func bytes(_ name: String, in object: [String: Any]) throws(MapHTTPError) -> Field {
        if let value = object[name] {
            if value is NSNull { return .null }
            guard let text = value as? String else { throw MapHTTPError(.badRequest, "'\(name)' must be a string") }
            return .value(Array(text.utf8))
        }
        if let value = object[name + "_base64"] {
            if value is NSNull { return .null }
            guard let text = value as? String, let data = Data(base64Encoded: text) else {
                throw MapHTTPError(.badRequest, "'\(name)_base64' must be a base64 string")
            }
            return .value(Array(data))
        }
        return .absent
    }

    /// A bytes field of a JSON request.
    enum Field {
        case absent
        case null
        case value([UInt8])
    }
}

/// Writes the response objects the API builds (`[String: Any]` of strings, integers, booleans, `NSNull`, nested
/// objects and arrays) as one line of JSON with sorted keys, as `JSONSerialization` with `.sortedKeys` and
/// `.withoutEscapingSlashes` does. It sorts keys by their Unicode scalars (Foundation collates them; the two agree on
/// the API's lower-case ASCII names), at a small fraction of Foundation's cost (docs/benchmarks.md, session 17).
struct JSONText {
    /// The text so far, UTF-8.
    private(set) var bytes: [UInt8] = []

    /// Appends `value`; `false` (with the text unusable) for a value of a type it does not write: a non-finite
    /// number, or anything but a string, an integer, a boolean, a finite `Double`, `NSNull`, `[String: Any]` or
    /// `[Any]`.
    mutating func write(_ value: Any) -> Bool {
        switch value {
        case let text as String:
            write(string: text)
        case let flag as Bool:
            if flag { bytes.append(contentsOf: "true".utf8) } else { bytes.append(contentsOf: "false".utf8) }
        case let number as any BinaryInteger:
            bytes.append(contentsOf: String(number).utf8)
        case let number as Double:
            guard number.isFinite else { return false }
            bytes.append(contentsOf: String(number).utf8)
        case let object as [String: Any]:
            bytes.append(UInt8(ascii: "{"))
            let keys = object.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
            for (position, key) in keys.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                write(string: key)
                bytes.append(UInt8(ascii: ":"))
                guard let element = object[key], write(element) else { return false }
            }
            bytes.append(UInt8(ascii: "}"))
        case let array as [Any]:
            bytes.append(UInt8(ascii: "["))
            for (position, element) in array.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                guard write(element) else { return false }
            }
            bytes.append(UInt8(ascii: "]"))
        case is NSNull:
            // Last: a cast to a class first bridges the value to Foundation (a dictionary to an NSDictionary, a
            // number to an NSNumber), which cost more than the rest of the writer together.
            bytes.append(contentsOf: "null".utf8)
        default:
            return false
        }
        return true
    }

    /// Appends `text` as a JSON string: `"` and `\` escaped, control characters as `\n`-style or `\u00XX` escapes,
    /// everything else (slashes, non-ASCII) as it is.
    mutating func write(string text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                // \u00XX, lower-case hex: the high digit is 0 or 1.
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(UInt8(ascii: "0") + byte >> 4)
                let low = byte & 0x0F
                bytes.append(low < 10 ? UInt8(ascii: "0") + low : UInt8(ascii: "a") + low - 10)
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
