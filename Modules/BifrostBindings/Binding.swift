/// A dynamically scoped variable with a default value, built on a Swift task local.
///
/// This is Clojure's `binding` (the original Rust project's `def_bindings!` / `with_bindings!`): a
/// `withValue(_:operation:)` scope binds a value that every read of ``value`` in that
/// scope sees, including reads in nested calls, across `await`, in child tasks (`async let`, task
/// groups) and in unstructured `Task {}`s created inside the scope. Other tasks and threads, and
/// `Task.detached`, do not see it; they read the innermost value bound in *their* scopes, or the default.
///
/// Declare a binding as a `static let` or a global `let`, like a `@TaskLocal`: the binding is the key
/// of its values, so it must live at least as long as any task that may read it.
///
/// ```swift
/// enum Node {
///     static let isLeader = Binding(default: false)
/// }
///
/// func handle(_ request: Request) async throws -> Response {
///     if Node.isLeader.value { ... }            // false outside any scope
/// }
///
/// try await Node.isLeader.withValue(true) {
///     try await handle(request)                 // handle reads true, even after suspensions
/// }
/// ```
///
/// Scopes nest: an inner scope shadows the outer one and restores it on exit, also when its body
/// throws.
///
/// The bound value is a copy of a `Sendable` value. When every read in a scope must return the
/// *same* shared object (the original's `Arc` bindings), bind a class instance: see
/// ``ReferenceBinding``.
///
/// - Note: Open a scope around a `withTaskGroup` call or inside a child task. Older Swift runtimes
///   trap when a task group's body opens a scope and calls `addTask` inside it.
public final class Binding<Value: Sendable>: Sendable {
    /// The task local that holds the bound values; its object identity is the key.
    private let local: TaskLocal<Value>

    /// Creates a binding whose ``value`` is `defaultValue` outside any scope.
    ///
    /// - Parameter defaultValue: The value read where no scope binds one.
    public init(default defaultValue: Value) {
        self.defaultValue = defaultValue
        self.local = TaskLocal(wrappedValue: defaultValue)
    }

    /// The value bound by the innermost enclosing scope of the current task, or the default.
    public var value: Value {
        local.get()
    }

    /// The value read outside any scope.
    public let defaultValue: Value

    /// Binds `value` for the duration of a synchronous `operation`, then restores the previous binding.
    ///
    /// Usable in synchronous and asynchronous code alike.
    ///
    /// - Parameters:
    ///   - value: The value that ``value`` returns inside `operation`.
    ///   - operation: The scope.
    /// - Returns: What `operation` returns.
    /// - Throws: What `operation` throws; the previous binding is restored first.
    public func withValue<R>(
        _ value: Value,
        operation: () throws -> R
    ) rethrows -> R {
        try local.withValue(value, operation: operation)
    }

    /// Binds `value` for the duration of an asynchronous `operation`, then restores the previous binding.
    ///
    /// The binding holds across suspensions and executor hops in `operation`, and child tasks created
    /// in `operation` inherit it. `operation` runs on the caller's isolation.
    ///
    /// - Parameters:
    ///   - value: The value that ``value`` returns inside `operation`.
    ///   - isolation: The caller's isolation, on which `operation` runs.
    ///   - operation: The scope.
    /// - Returns: What `operation` returns.
    /// - Throws: What `operation` throws; the previous binding is restored first.
    public func withValue<R>(
        _ value: Value,
        isolation: isolated (any Actor)? = #isolation,
        operation: () async throws -> R
    ) async rethrows -> R {
        try await local.withValue(value, operation: operation, isolation: isolation)
    }
}
