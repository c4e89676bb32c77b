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

    /// The options of a JSON config file (`{"name": "n1", "listen": "127.0.0.1:7001", ...}`); empty without a
    /// path. Values may be strings or numbers.
    static func configFile(_ path: String?) throws(ValidationError) -> [String: String] {
        guard let path else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the config file \(path)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ValidationError("the config file \(path) is not a JSON object")
        }
        var options: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: options[key] = text
            case let number as NSNumber: options[key] = number.stringValue
            default: throw ValidationError("config file \(path): '\(key)' must be a string or a number")
            }
        }
        let known: Set = [
            "name", "listen", "advertise", "http", "data-dir", "peers", "join", "log-level", "event-loops",
            "snapshot-entries", "max-commands-per-entry", "proposal-window-us",
        ]
        if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
            throw ValidationError("config file \(path): unknown option '\(unknown)' (known: \(known.sorted()))")
        }
        return options
    }

    /// `host:port` split, for listening (port 0 allowed: any free port).
    static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// Whether an address's host is a wildcard (0.0.0.0 or [::]), which peers cannot dial.
    static func isWildcard(_ address: String) -> Bool {
        guard let (host, _) = hostAndPort(address) else { return false }
        return host == "0.0.0.0" || host == "::" || host.isEmpty
    }

    /// A Prometheus-safe metric or label name: characters other than letters, digits, `_` and `:` become `_`.
    static func metricName(_ name: String) -> String {
        String(
            String.UnicodeScalarView(
                name.unicodeScalars.map { scalar in
                    scalar.isASCII
                        && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_"
                            || scalar == ":")
                        ? scalar : "_"
                }))
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
