import ArgumentParser
import BifrostRaft
import Foundation
import Logging

/// Helpers shared by the subcommands: environment defaults, node ids, output, logging.
enum Support {
    /// The value of an option: the command line first, then the environment variable, then `fallback`.
    static func option(_ value: String?, env name: String, fallback: String? = nil) -> String? {
        if let value, !value.isEmpty { return value }
        if let fromEnvironment = ProcessInfo.processInfo.environment[name], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return fallback
    }

    /// A node id from a name: a positive integer is the id itself ("3" is 3); otherwise the digits the name ends
    /// with ("n1" is 1, "node-12" is 12). A name without such digits, or with 0, is rejected.
    static func nodeID(fromName name: String) -> UInt64? {
        if let id = UInt64(name) { return id > 0 ? id : nil }
        let digits = String(name.reversed().prefix { $0.isASCII && $0.isNumber }.reversed())
        guard let id = UInt64(digits), id > 0 else { return nil }
        return id
    }

    /// Parses `id@host:port,...` (the id may be a name, as for `--name`).
    static func peers(_ text: String) throws(ValidationError) -> [RaftPeer] {
        var peers: [RaftPeer] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
        where !item.isEmpty {
            guard let at = item.firstIndex(of: "@") else {
                throw ValidationError("peer '\(item)' is not id@host:port")
            }
            let name = String(item[..<at])
            let address = String(item[item.index(after: at)...])
            guard let id = nodeID(fromName: name) else {
                throw ValidationError("peer '\(item)': '\(name)' is not a positive node id or a name ending in one")
            }
            guard isAddress(address) else { throw ValidationError("peer '\(item)': '\(address)' is not host:port") }
            peers.append(RaftPeer(id: id, address: address))
        }
        guard !peers.isEmpty else { throw ValidationError("no peers in '\(text)'") }
        return peers
    }

    /// Splits `host:port,...` and checks every address.
    static func addresses(_ text: String) throws(ValidationError) -> [String] {
        let addresses = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty
        }
        guard !addresses.isEmpty else { throw ValidationError("no addresses in '\(text)'") }
        for address in addresses where !isAddress(address) {
            throw ValidationError("'\(address)' is not host:port")
        }
        return addresses
    }

    /// Whether `text` is `host:port` (or `[v6]:port`) with a port in 1...65535.
    static func isAddress(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            return false
        }
        return colon != text.startIndex && (1...65535).contains(port)
    }

    /// Sets up swift-log once: to stderr at `level` (`trace` ... `critical`).
    static func bootstrapLogging(level text: String) throws(ValidationError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ValidationError(
                "log level '\(text)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return level
    }

    /// Writes a line to stdout at once (unbuffered, so a pipe sees it as it happens).
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Writes a line to stderr.
    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A value as text (UTF-8; invalid sequences become U+FFFD).
    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Prints `error: <code>: <message>` and returns the exit code for an operation error.
    static func fail(_ error: RaftClientError) -> ExitCode {
        err("error: \(error.code): \(error.message)")
        return ExitCode(2)
    }
}
