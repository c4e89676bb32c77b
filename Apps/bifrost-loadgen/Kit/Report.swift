import BifrostRaft
import Foundation

/// The value of one run parameter, as the JSON report carries it.
public enum ParameterValue: Sendable, Equatable {
    /// Text.
    case string(String)
    /// An integer.
    case int(Int)
    /// An unsigned integer (the seed).
    case unsigned(UInt64)
    /// A number.
    case double(Double)
    /// A flag.
    case bool(Bool)
    /// Not set (for example `rate` in a closed loop).
    case null
}

/// One parameter of a run: how the header line shows it and how the JSON report names it.
public struct ReportParameter: Sendable, Equatable {
    /// The name in the header line (`key-size`).
    public var headerName: String
    /// The value in the header line (`16`, `2s`, `on`).
    public var headerValue: String
    /// The key in the JSON report's `parameters` object (`key_size`).
    public var jsonName: String
    /// The value in the JSON report.
    public var jsonValue: ParameterValue

    /// Creates a parameter.
    public init(_ headerName: String, _ headerValue: String, json jsonName: String, _ jsonValue: ParameterValue) {
        self.headerName = headerName
        self.headerValue = headerValue
        self.jsonName = jsonName
        self.jsonValue = jsonValue
    }
}

/// Latency figures of successful operations, in milliseconds.
public struct LatencySummary: Sendable, Equatable {
    /// The mean.
    public var mean: Double
    /// The median.
    public var p50: Double
    /// The 90th percentile.
    public var p90: Double
    /// The 99th percentile.
    public var p99: Double
    /// The 99.9th percentile.
    public var p999: Double
    /// The largest.
    public var max: Double

    /// Creates a summary.
    public init(mean: Double, p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        self.mean = mean
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    /// All zero (no operation completed).
    public static let zero = LatencySummary(mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
}

/// The resident memory of one spawned node at the end of a run.
public struct NodeMemory: Sendable, Equatable {
    /// The node id.
    public var node: Int
    /// Its resident set size (`VmRSS`), in bytes.
    public var residentBytes: Int
    /// The largest resident set size it had (`VmHWM`), in bytes.
    public var peakResidentBytes: Int

    /// Creates a figure.
    public init(node: Int, residentBytes: Int, peakResidentBytes: Int) {
        self.node = node
        self.residentBytes = residentBytes
        self.peakResidentBytes = peakResidentBytes
    }

    /// Reads the `VmRSS` and `VmHWM` lines (in kB) of a Linux `/proc/<pid>/status` file; `nil` when either is
    /// missing or malformed.
    public init?(status: String, node: Int) {
        func kilobytes(_ field: String) -> Int? {
            for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
                let words = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard words.count == 2, words[1] == "kB", let value = Int(words[0]), value >= 0 else { return nil }
                return value
            }
            return nil
        }
        guard let rss = kilobytes("VmRSS"), let peak = kilobytes("VmHWM") else { return nil }
        self.init(node: node, residentBytes: rss * 1024, peakResidentBytes: peak * 1024)
    }
}

/// The result of a run: what the final report prints, as text (``text()``) or JSON (``json()``).
public struct LoadReport: Sendable, Equatable {
    /// The value of the JSON report's `tool` field.
    public static let tool = "bifrost-loadgen"

    /// Every parameter of the run, in header order.
    public var parameters: [ReportParameter]
    /// The system under test (`bifrost-native`, `bifrost-http`): the JSON report's `target`.
    public var target: String
    /// Operations that succeeded within the measured window.
    public var requests: Int
    /// Operations that failed within the measured window.
    public var errors: Int
    /// Failures by kind (`timeout`, `unavailable`, `http-503`, ...).
    public var errorsByKind: [String: Int]
    /// Read-modify-writes whose compare-and-swap found another value (not errors: the operation completed).
    public var casConflicts: Int
    /// The length of the measured window, in seconds.
    public var durationSeconds: Double
    /// Latencies of the successful operations.
    public var latency: LatencySummary
    /// The memory of each spawned node at the end of the run (empty for a cluster given by address).
    public var nodeMemory: [NodeMemory]

    /// Creates a report.
    public init(
        parameters: [ReportParameter], target: String, requests: Int, errors: Int, errorsByKind: [String: Int],
        casConflicts: Int, durationSeconds: Double, latency: LatencySummary, nodeMemory: [NodeMemory] = []
    ) {
        self.nodeMemory = nodeMemory
        self.parameters = parameters
        self.target = target
        self.requests = requests
        self.errors = errors
        self.errorsByKind = errorsByKind
        self.casConflicts = casConflicts
        self.durationSeconds = durationSeconds
        self.latency = latency
    }

    /// Successful operations per second of the measured window.
    public var opsPerSecond: Double { durationSeconds > 0 ? Double(requests) / durationSeconds : 0 }

    /// The open loop's offered rate (the `rate` parameter), or `nil` in a closed loop.
    public var offeredRate: Double? {
        guard let parameter = parameters.first(where: { $0.jsonName == "rate" }),
            case .double(let rate) = parameter.jsonValue, rate > 0
        else { return nil }
        return rate
    }

    /// Below this share of the offered rate, the text report says that the rate was not reached.
    public static let servedWarningShare = 0.95

    /// The header line: `bifrost-loadgen: name=value ...` with every parameter.
    public func header() -> String {
        "bifrost-loadgen: " + parameters.map { "\($0.headerName)=\($0.headerValue)" }.joined(separator: " ")
    }

    /// The text report, in the style of etcd's `benchmark` and redis-benchmark; ends with a newline.
    public func text() -> String {
        var lines = [header()]
        lines.append("Summary:")
        lines.append("  Total:        \(Self.fixed(durationSeconds, 4)) secs.")
        lines.append("  Requests:     \(requests)")
        lines.append("  Requests/sec: \(Self.fixed(opsPerSecond, 1))")
        if let offered = offeredRate {
            // Errors are served requests too: they came back within the window.
            let served = durationSeconds > 0 ? Double(requests + errors) / durationSeconds / offered : 0
            var line = "  Offered/sec:  \(Self.fixed(offered, 1)) (\(Self.fixed(served * 100, 1))% answered"
            if served < Self.servedWarningShare {
                line += "; the rate was not reached: the system, or the load generator, is saturated"
            }
            lines.append(line + ")")
        }
        lines.append("  Errors:       \(errors)")
        if casConflicts > 0 || parameters.contains(where: { $0.jsonName == "workload" && $0.headerValue == "ycsb-f" }) {
            lines.append("  CAS misses:   \(casConflicts)")
        }
        lines.append("Latency (ms):")
        let figures = [
            ("mean", latency.mean), ("p50", latency.p50), ("p90", latency.p90), ("p99", latency.p99),
            ("p99.9", latency.p999), ("max", latency.max),
        ]
        lines.append("  " + figures.map { "\($0.0) \(Self.fixed($0.1, 3))" }.joined(separator: "  "))
        if !errorsByKind.isEmpty {
            lines.append("Errors by kind:")
            for (kind, count) in errorsByKind.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(kind): \(count)")
            }
        }
        if !nodeMemory.isEmpty {
            lines.append("Node memory (MB, resident / peak):")
            lines.append(
                "  "
                    + nodeMemory.map {
                        "node \($0.node) \(Self.fixed(Double($0.residentBytes) / 1e6, 1)) / "
                            + Self.fixed(Double($0.peakResidentBytes) / 1e6, 1)
                    }.joined(separator: "  "))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The JSON report: one object, keys in a fixed order, ending with a newline.
    ///
    /// `{"tool":"bifrost-loadgen","target":"bifrost-native","parameters":{...},"requests":N,"errors":N,
    /// "errors_by_kind":{"timeout":3},"duration_s":10.0,"ops_per_sec":12345.1,"latency_ms":{"mean":..,"p50":..,
    /// "p90":..,"p99":..,"p999":..,"max":..},"node_memory":[{"node":1,"rss_bytes":N,"peak_rss_bytes":N}]}`
    /// (`node_memory` only for a spawned cluster).
    public func json() -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("tool")
        json.string(Self.tool)
        json.key("target")
        json.string(target)
        json.key("parameters")
        json.beginObject()
        for parameter in parameters {
            json.key(parameter.jsonName)
            json.value(parameter.jsonValue)
        }
        json.endObject()
        json.key("requests")
        json.int(requests)
        json.key("errors")
        json.int(errors)
        json.key("errors_by_kind")
        json.beginObject()
        for (kind, count) in errorsByKind.sorted(by: { $0.key < $1.key }) {
            json.key(kind)
            json.int(count)
        }
        json.endObject()
        json.key("duration_s")
        json.number(durationSeconds, decimals: 4)
        json.key("ops_per_sec")
        json.number(opsPerSecond, decimals: 1)
        json.key("latency_ms")
        json.beginObject()
        for (name, value) in [
            ("mean", latency.mean), ("p50", latency.p50), ("p90", latency.p90), ("p99", latency.p99),
            ("p999", latency.p999), ("max", latency.max),
        ] {
            json.key(name)
            json.number(value, decimals: 3)
        }
        json.endObject()
        if !nodeMemory.isEmpty {
            json.key("node_memory")
            json.beginArray()
            for memory in nodeMemory {
                json.beginObject()
                json.key("node")
                json.int(memory.node)
                json.key("rss_bytes")
                json.int(memory.residentBytes)
                json.key("peak_rss_bytes")
                json.int(memory.peakResidentBytes)
                json.endObject()
            }
            json.endArray()
        }
        json.endObject()
        return json.text + "\n"
    }

    /// `value` with `decimals` digits after the point (`-` for a value that is not finite).
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        return String(format: "%.\(decimals)f", value)
    }
}

/// A minimal JSON writer for the report: nested objects, strings (escaped per RFC 8259), integers and
/// fixed-point numbers. Commas between members are placed automatically.
struct JSONWriter {
    /// The JSON written so far.
    private(set) var text = ""
    /// The number of members (or elements) written so far in each open object (or array), innermost last.
    private var members: [Int] = []
    /// Whether each open container is an array, innermost last.
    private var arrays: [Bool] = []

    /// Opens an object (as a value, an array element, or the whole document).
    mutating func beginObject() { open("{", array: false) }

    /// Closes the innermost object.
    mutating func endObject() { close("}") }

    /// Opens an array (as a value); its elements are objects.
    mutating func beginArray() { open("[", array: true) }

    /// Closes the innermost array.
    mutating func endArray() { close("]") }

    private mutating func open(_ bracket: String, array: Bool) {
        separateElement()
        text += bracket
        members.append(0)
        arrays.append(array)
    }

    private mutating func close(_ bracket: String) {
        _ = members.popLast()
        _ = arrays.popLast()
        text += bracket
    }

    /// Puts a comma before every element of an array but the first.
    private mutating func separateElement() {
        guard arrays.last == true, let count = members.last else { return }
        if count > 0 { text += "," }
        members[members.count - 1] = count + 1
    }

    /// Writes a member name; the next call writes its value.
    mutating func key(_ name: String) {
        if let count = members.last {
            if count > 0 { text += "," }
            members[members.count - 1] = count + 1
        }
        text += Self.quoted(name) + ":"
    }

    /// Writes a string value.
    mutating func string(_ value: String) { text += Self.quoted(value) }

    /// Writes an integer value.
    mutating func int(_ value: Int) { text += String(value) }

    /// Writes a number with `decimals` digits after the point; `null` when it is not finite.
    mutating func number(_ value: Double, decimals: Int) {
        text += value.isFinite ? String(format: "%.\(decimals)f", value) : "null"
    }

    /// Writes a parameter value.
    mutating func value(_ value: ParameterValue) {
        switch value {
        case .string(let string): self.string(string)
        case .int(let number): int(number)
        case .unsigned(let number): text += String(number)
        case .double(let number): text += number.isFinite ? "\(number)" : "null"
        case .bool(let flag): text += flag ? "true" : "false"
        case .null: text += "null"
        }
    }

    /// `value` as a JSON string literal.
    static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension LoadConfiguration {
    /// The run's parameters for the header and the JSON report. `cluster` describes the cluster
    /// (`spawned:3`, or the addresses).
    public func reportParameters(cluster clusterText: String) -> [ReportParameter] {
        let nodes: ParameterValue
        switch cluster {
        case .spawn(let count): nodes = .int(count)
        case .external(let addresses): nodes = .int(addresses.count)
        }
        var list = [
            ReportParameter("workload", workload.rawValue, json: "workload", .string(workload.rawValue)),
            ReportParameter("sm", stateMachine.rawValue, json: "state_machine", .string(stateMachine.rawValue)),
            ReportParameter("protocol", protocolKind.rawValue, json: "protocol", .string(protocolKind.rawValue)),
            ReportParameter("target", target.rawValue, json: "target", .string(target.rawValue)),
            ReportParameter("cluster", clusterText, json: "cluster", .string(clusterText)),
            ReportParameter("nodes", "\(nodes.intValue ?? 0)", json: "nodes", nodes),
            ReportParameter("fsync", "on", json: "fsync", .string("on")),
            ReportParameter("clients", "\(clients)", json: "clients", .int(clients)),
            ReportParameter("connections", "\(connections)", json: "connections", .int(connections)),
            ReportParameter("pipeline", "\(pipeline)", json: "pipeline", .int(pipeline)),
            ReportParameter(
                "distribution", effectiveDistribution.rawValue, json: "distribution",
                .string(effectiveDistribution.rawValue)),
            ReportParameter("keyspace", "\(keyspace)", json: "keyspace", .int(Int(keyspace))),
            ReportParameter("key-size", "\(keySize)", json: "key_size", .int(keySize)),
            ReportParameter("value-size", "\(valueSize)", json: "value_size", .int(valueSize)),
            ReportParameter(
                "read-ratio", Self.compact(mix.read), json: "read_ratio", .double(mix.read)),
            ReportParameter("preload", preload ? "on" : "off", json: "preload", .bool(preload)),
            ReportParameter(
                "consistency", consistency.name, json: "consistency", .string(consistency.name)),
            ReportParameter(
                "loop", rate == nil ? "closed" : "open", json: "loop", .string(rate == nil ? "closed" : "open")),
        ]
        if let rate {
            list.append(ReportParameter("rate", Self.compact(rate), json: "rate", .double(rate)))
        } else {
            list.append(ReportParameter("rate", "-", json: "rate", .null))
        }
        list += [
            ReportParameter("warmup", Self.compact(warmup) + "s", json: "warmup_s", .double(warmup)),
            ReportParameter("duration", Self.compact(duration) + "s", json: "duration_s", .double(duration)),
            ReportParameter("seed", "\(seed)", json: "seed", .unsigned(seed)),
        ]
        return list
    }

    /// A number without a trailing `.0` (`2`, `0.5`, `1500`).
    static func compact(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension ParameterValue {
    /// The integer, for an `.int`.
    var intValue: Int? {
        if case .int(let value) = self { return value }
        return nil
    }
}

extension ReadConsistency {
    /// The level's flag value: `linearizable`, `lease`, `sequential` or `stale`.
    public var name: String {
        switch self {
        case .linearizable: "linearizable"
        case .lease: "lease"
        case .sequential: "sequential"
        case .stale: "stale"
        }
    }

    /// The level named `name`, or `nil`.
    public init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }
}
