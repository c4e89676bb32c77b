/// A change of a ``ReplicatedNumber``: the number before and after.
public struct NumberChange: Codable, Sendable, Hashable {
    /// The number before the command.
    public var old: Int64
    /// The number after the command.
    public var new: Int64

    /// Creates a change.
    public init(old: Int64, new: Int64) {
        self.old = old
        self.new = new
    }
}

/// The built-in replicated 64-bit signed counter, 0 at first.
///
/// Register it on every node (`stateMachines: [(ReplicatedNumber.defaultID, ReplicatedNumber())]`) and use it
/// through `ReplicatedNumber.Client` (`NumberClient`). Additions that would overflow are rejected (the number keeps
/// its value). `onChanged` delivers every change with the old and new numbers; commands that leave the number as it
/// was (adding 0, setting the same number, a failed compare-and-swap) raise nothing.
@StateMachine
public struct ReplicatedNumber: Codable, Hashable {
    /// A conventional id for the number (the map's is 1, the value's 2).
    public static let defaultID: UInt64 = 3

    /// Every change, with the old and new numbers.
    public static let onChanged = Subscription<NoPattern, NumberChange>("onChanged")

    var value: Int64 = 0

    /// Creates a number, 0.
    public init() {}

    /// Sets the number; returns the previous one.
    @Command public mutating func set(_ new: Int64, context: RaftApplyContext) -> Int64 {
        let old = value
        change(to: new, context: context)
        return old
    }

    /// Adds `delta`; returns the new number. Overflow is `rejected`.
    @Command public mutating func addAndGet(
        _ delta: Int64, context: RaftApplyContext
    ) throws(RaftStateMachineError)
        -> Int64
    {
        change(to: try sum(delta), context: context)
        return value
    }

    /// Adds `delta`; returns the previous number. Overflow is `rejected`.
    @Command public mutating func getAndAdd(
        _ delta: Int64, context: RaftApplyContext
    ) throws(RaftStateMachineError)
        -> Int64
    {
        let old = value
        change(to: try sum(delta), context: context)
        return old
    }

    /// Sets the number to `new` if it is `expected`; returns whether it was.
    @Command public mutating func compareAndSwap(expected: Int64, new: Int64, context: RaftApplyContext) -> Bool {
        guard value == expected else { return false }
        change(to: new, context: context)
        return true
    }

    /// The number.
    @Query public func get() -> Int64 { value }

    private func sum(_ delta: Int64) throws(RaftStateMachineError) -> Int64 {
        let (sum, overflow) = value.addingReportingOverflow(delta)
        guard !overflow else {
            throw RaftStateMachineError(code: .rejected, message: "\(value) + \(delta) overflows Int64")
        }
        return sum
    }

    private mutating func change(to new: Int64, context: RaftApplyContext) {
        guard new != value else { return }
        let old = value
        value = new
        context.notify(Self.onChanged, payload: NumberChange(old: old, new: new))
    }
}

/// The typed client of ``ReplicatedNumber``.
public typealias NumberClient = ReplicatedNumber.Client
