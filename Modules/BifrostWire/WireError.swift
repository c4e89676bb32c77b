/// An error raised while encoding or decoding Bifrost's wire format.
///
/// Decoding never traps on hostile input: truncated, random, oversized or non-canonical bytes all surface as a
/// `WireError` whose ``code`` says what was wrong and whose ``message`` says where.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong. Codes compare equal by kind; new codes may be added without breaking the API.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Wrapped: String, Hashable, Sendable {
            case truncated
            case overflow
            case invalidValue
            case invalidUTF8
            case limitExceeded
            case depthExceeded
            case nonCanonical
            case missingField
            case trailingBytes
            case encodingFailed
        }

        let wrapped: Wrapped

        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The input ended before the value it announced.
        public static let truncated = Code(.truncated)
        /// An integer does not fit the type it is decoded into, or a varint is longer than 64 bits.
        public static let overflow = Code(.overflow)
        /// A tag, flag or raw value is not one the type defines.
        public static let invalidValue = Code(.invalidValue)
        /// A string's bytes are not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// A length or count exceeds the configured ``WireLimits``.
        public static let limitExceeded = Code(.limitExceeded)
        /// Values are nested deeper than ``WireLimits/maxDepth``.
        public static let depthExceeded = Code(.depthExceeded)
        /// The bytes are decodable but not in canonical form (overlong varint, unsorted or duplicate keys).
        public static let nonCanonical = Code(.nonCanonical)
        /// A `Codable` type asked for a field that the encoded value does not carry.
        public static let missingField = Code(.missingField)
        /// Bytes remain after a complete top-level value.
        public static let trailingBytes = Code(.trailingBytes)
        /// A value's own `encode(to:)` threw.
        public static let encodingFailed = Code(.encodingFailed)

        public var description: String { wrapped.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// A human-readable explanation, naming the offending type or value where possible.
    public var message: String

    /// Creates an error with a code and a message.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "WireError.\(code): \(message)" }

    @usableFromInline
    static func truncated(_ what: @autoclosure () -> String) -> WireError {
        WireError(code: .truncated, message: "input ended inside \(what())")
    }
}
