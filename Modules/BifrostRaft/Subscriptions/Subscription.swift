import BifrostRPC
import BifrostWire

/// A kind of event a state machine raises, declared once as a static property of the state machine:
///
/// ```swift
/// static let onKeyInserted = Subscription<String, String>("onKeyInserted")   // pattern: the key; payload: the value
/// static let onChanged = Subscription<NoPattern, Int>("onChanged")            // no pattern
/// ```
///
/// A command raises it with ``RaftApplyContext/notify(_:pattern:payload:)``; clients subscribe with a pattern (or
/// none, to receive every event of the kind). Patterns match on their canonical ``Wire`` encoding.
public struct Subscription<Pattern: Codable & Sendable, Payload: Codable & Sendable>: Sendable, Hashable {
    /// The name, unique within the state machine.
    public let name: String
    /// The kind id: the FNV-1a 64 hash of the name.
    public let kind: UInt64

    /// Declares a subscription kind named `name`.
    public init(_ name: String) {
        self.name = name
        self.kind = RPCFunctionID.of(name)
    }

    /// The canonical encoding of a pattern value.
    public func encode(pattern: Pattern) -> [UInt8] {
        if Pattern.self == NoPattern.self { return [] }
        return (try? WireEncoder().encodeToBytes(pattern)) ?? []
    }
}

/// The pattern type of a subscription that has none.
public struct NoPattern: Codable, Sendable, Hashable {
    /// The only value.
    public init() {}
}

extension RaftApplyContext {
    /// Raises an event of `subscription` with `payload`, matched by subscribers against `pattern`.
    public func notify<Pattern, Payload>(
        _ subscription: Subscription<Pattern, Payload>, pattern: Pattern, payload: Payload
    ) {
        guard let bytes = try? WireEncoder().encodeToBytes(payload) else { return }
        notify(
            kind: subscription.kind, pattern: subscription.encode(pattern: pattern),
            payload: bytes)
    }

    /// Raises an event of a subscription without a pattern.
    public func notify<Payload>(_ subscription: Subscription<NoPattern, Payload>, payload: Payload) {
        notify(subscription, pattern: NoPattern(), payload: payload)
    }
}
