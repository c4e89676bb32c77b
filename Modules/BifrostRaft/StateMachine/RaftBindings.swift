@_exported import BifrostBindings

/// Bindings the framework sets while a command is applied, for code that needs the apply context without having
/// it passed down: the original project's `IS_LEADER` binding, on task locals.
///
/// ```swift
/// func remember(_ event: Event) {
///     if RaftBindings.isLeader { notifyOutsideWorld(event) }   // only the leader talks to the outside
/// }
/// ```
///
/// Outside an apply call the context is `nil`, and `isLeader` is `false`.
public enum RaftBindings {
    /// The context of the command being applied, or `nil` outside an apply call.
    public static let applyContext = Binding<RaftApplyContext?>(default: nil)

    /// Whether the command being applied is applied on the leader (`false` outside an apply call).
    public static var isLeader: Bool { applyContext.value?.isLeader ?? false }

    /// The log index of the command being applied (0 outside an apply call).
    public static var index: UInt64 { applyContext.value?.index ?? 0 }

    /// The term of the command being applied (0 outside an apply call).
    public static var term: UInt64 { applyContext.value?.term ?? 0 }
}
