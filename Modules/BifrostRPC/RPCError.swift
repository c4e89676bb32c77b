/// An error from a remote procedure call: a ``Code`` and a message.
///
/// Codes compare by kind; new codes can be added without breaking the API. Errors raised by a handler reach the
/// caller as ``Code/handlerError`` with the handler's message.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure. Its raw value is what travels on the wire.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The wire value of the code.
        public let rawValue: UInt8

        private init(_ rawValue: UInt8) { self.rawValue = rawValue }

        /// Decodes a wire value; unknown values map to ``unknown`` rather than failing, so a newer peer's codes
        /// still surface as errors.
        public init(wireValue: UInt8) {
            self = Code.all.first { $0.rawValue == wireValue } ?? .unknown
        }

        /// No service is registered under the called service id.
        public static let serviceNotFound = Code(1)
        /// The service has no function with the called function id.
        public static let functionNotFound = Code(2)
        /// The request's payload could not be decoded.
        public static let badRequest = Code(3)
        /// The handler threw; the message is the handler's.
        public static let handlerError = Code(4)
        /// The call's deadline passed before a response arrived.
        public static let deadlineExceeded = Code(5)
        /// The peer cannot be reached, or the connection closed with the call in flight.
        public static let unavailable = Code(6)
        /// A limit was hit: a frame too large, too many calls in flight, too many connections.
        public static let resourceExhausted = Code(7)
        /// The caller cancelled the call.
        public static let cancelled = Code(8)
        /// The peer broke the protocol (a malformed frame); the connection is closed.
        public static let protocolViolation = Code(9)
        /// An error code this build does not know.
        public static let unknown = Code(255)

        static let all: [Code] = [
            .serviceNotFound, .functionNotFound, .badRequest, .handlerError, .deadlineExceeded, .unavailable,
            .resourceExhausted, .cancelled, .protocolViolation, .unknown,
        ]

        public var description: String {
            switch rawValue {
            case 1: "serviceNotFound"
            case 2: "functionNotFound"
            case 3: "badRequest"
            case 4: "handlerError"
            case 5: "deadlineExceeded"
            case 6: "unavailable"
            case 7: "resourceExhausted"
            case 8: "cancelled"
            case 9: "protocolViolation"
            default: "unknown(\(rawValue))"
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, for people.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "RPCError.\(code): \(message)" }
}
