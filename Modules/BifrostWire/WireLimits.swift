/// Bounds that a ``WireReader`` enforces before it allocates anything on the word of untrusted input.
///
/// Every length or count read from the wire is checked against these limits *and* against the bytes actually
/// remaining, so a hostile 4-byte prefix can never make the decoder reserve gigabytes.
public struct WireLimits: Hashable, Sendable {
    /// The largest string or byte string, in bytes. Default: 64 MiB.
    public var maxBytesLength: Int
    /// The largest element count of an array, set or dictionary. Default: 16,777,216.
    public var maxCollectionCount: Int
    /// The deepest nesting of values (recursive types, `Codable` containers). Default: 100.
    ///
    /// The limit protects the decoding thread's stack from input that nests without end.
    public var maxDepth: Int

    /// Creates limits; every parameter has the documented default.
    public init(maxBytesLength: Int = 64 << 20, maxCollectionCount: Int = 1 << 24, maxDepth: Int = 100) {
        precondition(maxBytesLength >= 0 && maxCollectionCount >= 0 && maxDepth > 0, "limits must be positive")
        self.maxBytesLength = maxBytesLength
        self.maxCollectionCount = maxCollectionCount
        self.maxDepth = maxDepth
    }

    /// The default limits.
    public static let `default` = WireLimits()
}
