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

/// JSON bodies through `JSONSerialization` (the API's values are either UTF-8 text or base64).
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
