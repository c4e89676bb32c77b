import Testing

@testable import BifrostRPC

@Suite("RPC addresses")
struct RPCAddressTests {
    @Test(
        "host:port parses, IPv6 in brackets too",
        arguments: [
            ("127.0.0.1:7000", RPCAddress(host: "127.0.0.1", port: 7000)),
            ("localhost:0", RPCAddress(host: "localhost", port: 0)),
            ("[::1]:65535", RPCAddress(host: "::1", port: 65535)),
            ("::1:80", RPCAddress(host: "::1", port: 80)),
        ]
    )
    func parses(text: String, expected: RPCAddress) {
        #expect(RPCAddress(text) == expected)
    }

    @Test(
        "malformed addresses are rejected, not trapped on",
        arguments: ["", "7000", ":7000", "host:", "host:-1", "host:65536", "host:99999999999999999999", "[]:1", "a:b"]
    )
    func rejects(text: String) {
        #expect(RPCAddress(text) == nil)
    }

    @Test("descriptions round-trip through the parser")
    func descriptions() {
        for address in [RPCAddress(host: "10.0.0.1", port: 1), RPCAddress(host: "::1", port: 2)] {
            #expect(RPCAddress(address.description) == address)
        }
        #expect(RPCAddress(host: "::1", port: 2).description == "[::1]:2")
    }

    @Test("a free loopback port lies outside the kernel's ephemeral range, where outgoing connections cannot take it")
    func freePortOutsideTheEphemeralRange() throws {
        let range = RPCAddress.ephemeralPortRange()
        #expect(range.low <= range.high)
        for _ in 0..<50 {
            let port = try RPCAddress.freeLoopbackPort()
            #expect(port >= 1_024 && port <= 65_535)
            #expect(port < range.low || port > range.high, "port \(port), ephemeral range \(range)")
        }
    }
}
