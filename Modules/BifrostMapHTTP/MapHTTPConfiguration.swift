/// Settings of the HTTP API. Every knob has a documented default.
public struct MapHTTPConfiguration: Sendable {
    /// The longest key, in UTF-8 bytes; a longer one gets 413. Default: 4,096.
    public var maxKeyBytes: Int = 4096
    /// The largest value; a larger one gets 413. Default: 1 MiB.
    public var maxValueBytes: Int = 1 << 20
    /// The largest request body (a batch put); a larger one gets 413. Default: 16 MiB.
    public var maxBodyBytes: Int = 16 << 20
    /// The page size of `GET /v1/kv` without `limit`. Default: 100.
    public var defaultListLimit: Int = 100
    /// The largest `limit` of `GET /v1/kv`. Default: 10,000.
    public var maxListLimit: Int = 10_000
    /// How many events a watch stream may fall behind its client before it ends (the client then resumes from
    /// the last event id it received). Default: 10,000.
    public var watchBufferEvents: Int = 10_000
    /// How often an idle watch stream sends a comment line, so that proxies and clients see it is alive.
    /// Default: 15 s.
    public var watchHeartbeat: Duration = .seconds(15)
    /// The `Retry-After` of a 503, in seconds. Default: 1.
    public var retryAfterSeconds: Int = 1

    /// Creates the default configuration.
    public init() {}
}
