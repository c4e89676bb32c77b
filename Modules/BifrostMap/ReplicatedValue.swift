/// A change of a ``ReplicatedValue``: the bytes before and after.
public struct ValueChange: Codable, Sendable, Hashable {
    /// The value before the command.
    public var old: [UInt8]
    /// The value after the command.
    public var new: [UInt8]

    /// Creates a change.
    public init(old: [UInt8], new: [UInt8]) {
        self.old = old
        self.new = new
    }
}

/// The built-in replicated register: one byte string, empty at first.
///
/// Register it on every node (`stateMachines: [(ReplicatedValue.defaultID, ReplicatedValue())]`) and use it through
/// `ReplicatedValue.Client` (`ValueClient`). `onChanged` delivers every `set`, with the old and new values.
@StateMachine
public struct ReplicatedValue: Codable, Hashable {
    /// A conventional id for the value (the map's is 1).
    public static let defaultID: UInt64 = 2

    /// Every `set`, with the old and new values (also when they are equal).
    public static let onChanged = Subscription<NoPattern, ValueChange>("onChanged")

    var value: [UInt8] = []

    /// Creates an empty value.
    public init() {}

    /// Sets the value; returns the previous one.
    @Command public mutating func set(_ new: [UInt8], context: RaftApplyContext) -> [UInt8] {
        let old = value
        value = new
        context.notify(Self.onChanged, payload: ValueChange(old: old, new: new))
        return old
    }

    /// The value.
    @Query public func get() -> [UInt8] { value }
}

/// The typed client of ``ReplicatedValue``.
public typealias ValueClient = ReplicatedValue.Client
