/// Binds two bindings for the duration of a synchronous `operation`, as nested scopes.
///
/// ```swift
/// withBindings((Node.isLeader, true), (Node.term, 7)) {
///     handle(request)
/// }
/// ```
///
/// - Parameters:
///   - a: The outer binding and its value.
///   - b: The inner binding and its value.
///   - operation: The scope.
/// - Returns: What `operation` returns.
/// - Throws: What `operation` throws; the previous bindings are restored first.
public func withBindings<A, B, R>(
    _ a: (Binding<A>, A),
    _ b: (Binding<B>, B),
    operation: () throws -> R
) rethrows -> R {
    try a.0.withValue(a.1) {
        try b.0.withValue(b.1, operation: operation)
    }
}

/// Binds three bindings for the duration of a synchronous `operation`, as nested scopes.
///
/// - Parameters:
///   - a: The outermost binding and its value.
///   - b: The middle binding and its value.
///   - c: The innermost binding and its value.
///   - operation: The scope.
/// - Returns: What `operation` returns.
/// - Throws: What `operation` throws; the previous bindings are restored first.
public func withBindings<A, B, C, R>(
    _ a: (Binding<A>, A),
    _ b: (Binding<B>, B),
    _ c: (Binding<C>, C),
    operation: () throws -> R
) rethrows -> R {
    try a.0.withValue(a.1) {
        try b.0.withValue(b.1) {
            try c.0.withValue(c.1, operation: operation)
        }
    }
}

/// Binds two bindings for the duration of an asynchronous `operation`, as nested scopes.
///
/// ```swift
/// try await withBindings((Node.isLeader, true), (Node.term, 7)) {
///     try await handle(request)
/// }
/// ```
///
/// - Parameters:
///   - a: The outer binding and its value.
///   - b: The inner binding and its value.
///   - isolation: The caller's isolation, on which `operation` runs.
///   - operation: The scope.
/// - Returns: What `operation` returns.
/// - Throws: What `operation` throws; the previous bindings are restored first.
public func withBindings<A, B, R>(
    _ a: (Binding<A>, A),
    _ b: (Binding<B>, B),
    isolation: isolated (any Actor)? = #isolation,
    operation: () async throws -> R
) async rethrows -> R {
    try await a.0.withValue(a.1, isolation: isolation) {
        try await b.0.withValue(b.1, isolation: isolation, operation: operation)
    }
}

/// Binds three bindings for the duration of an asynchronous `operation`, as nested scopes.
///
/// - Parameters:
///   - a: The outermost binding and its value.
///   - b: The middle binding and its value.
///   - c: The innermost binding and its value.
///   - isolation: The caller's isolation, on which `operation` runs.
///   - operation: The scope.
/// - Returns: What `operation` returns.
/// - Throws: What `operation` throws; the previous bindings are restored first.
public func withBindings<A, B, C, R>(
    _ a: (Binding<A>, A),
    _ b: (Binding<B>, B),
    _ c: (Binding<C>, C),
    isolation: isolated (any Actor)? = #isolation,
    operation: () async throws -> R
) async rethrows -> R {
    try await a.0.withValue(a.1, isolation: isolation) {
        try await b.0.withValue(b.1, isolation: isolation) {
            try await c.0.withValue(c.1, isolation: isolation, operation: operation)
        }
    }
}
