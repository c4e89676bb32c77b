#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The address of an RPC server: a host and a TCP port.
public struct RPCAddress: Hashable, Sendable, CustomStringConvertible {
    /// A host name or IP address.
    public var host: String
    /// A TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (the last colon separates the port, so `[::1]:7000` and `::1:7000` both work).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension RPCAddress {
    /// A TCP port on 127.0.0.1 that nobody listens on right now, for starting local servers whose ports must be
    /// known before they start (spawned clusters, tests).
    ///
    /// The port is checked free by binding it, then released, so a server started later can take it. It is
    /// picked at random outside the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range` on Linux),
    /// because the kernel hands the ports of that range to outgoing connections: a port it gave back to `bind(0)`
    /// could be taken by any process's next connection before the server binds it. When no port outside the range
    /// is free after 64 tries, the kernel picks one (`bind` to port 0).
    ///
    /// - Throws: ``RPCError`` with `unavailable` when a socket call fails.
    public static func freeLoopbackPort() throws(RPCError) -> Int {
        let (low, high) = ephemeralPortRange()
        // The larger of the two spans outside the range, above the well-known and registered low ports.
        let below = 10_000..<max(10_000, low)
        let above = (high + 1)..<65_536
        let span = below.count >= above.count ? below : above
        if !span.isEmpty {
            for _ in 0..<64 {
                let port = Int.random(in: span)
                if let bound = try bindLoopback(port: port) { return bound }
            }
        }
        guard let port = try bindLoopback(port: 0) else {
            // `bindLoopback` throws, with the errno, when port 0 fails; nil is only for a taken port.
            throw RPCError(code: .unavailable, message: "bind() to port 0 failed")
        }
        return port
    }

    /// The kernel's ephemeral port range: Linux's `ip_local_port_range`, else IANA's (49152-65535).
    static func ephemeralPortRange() -> (low: Int, high: Int) {
        #if os(Linux)
        let fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY)
        if fd >= 0 {
            defer { close(fd) }
            var bytes = [UInt8](repeating: 0, count: 64)
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                let text = String(decoding: bytes[..<count], as: UTF8.self)
                let bounds = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap {
                    Int($0)
                }
                if bounds.count == 2, bounds[0] <= bounds[1] { return (bounds[0], bounds[1]) }
            }
        }
        #endif
        return (49_152, 65_535)
    }

    /// Binds a socket to 127.0.0.1:`port` (0: the kernel picks), reads the port back and closes the socket; nil
    /// when `port` is taken.
    private static func bindLoopback(port: Int) throws(RPCError) -> Int? {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw RPCError(code: .unavailable, message: "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            // A taken port is nil (try another); port 0 failing is an error, reported with its errno (read here,
            // before `close` can change it).
            if port == 0 { throw RPCError(code: .unavailable, message: "bind() failed: errno \(errno)") }
            return nil
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw RPCError(code: .unavailable, message: "getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
