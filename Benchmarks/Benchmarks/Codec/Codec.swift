// Codec benchmarks: encode + decode of a typical command (a 16-byte key and a 100-byte value).
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --target Codec
//
// Foundation's JSONEncoder/JSONDecoder on the same value is the baseline measured in the same run.

import Benchmark
import BifrostWire
import Foundation
import NIOCore

/// A hand-written native conformance: the fast path.
struct PutCommand: WireCodable, Codable, Equatable {
    var key: String
    var value: [UInt8]
    var ttl: UInt32?

    init(key: String, value: [UInt8], ttl: UInt32?) {
        self.key = key
        self.value = value
        self.ttl = ttl
    }

    func encode(to writer: inout WireWriter) {
        writer.write(key)
        writer.write(value)
        writer.write(ttl)
    }

    init(from reader: inout WireReader) throws(WireError) {
        key = try reader.read(String.self)
        value = try reader.read([UInt8].self)
        ttl = try reader.read(UInt32?.self)
    }
}

/// The same shape, declared only `Codable`: what a user gets for free.
struct PutCodable: Codable, Equatable {
    var key: String
    var value: [UInt8]
    var ttl: UInt32?
}

let key = "user:0000000042:"  // 16 bytes
let value = [UInt8]((0..<100).map { UInt8(truncatingIfNeeded: $0 &* 31) })

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    Benchmark("native encode+decode (16 B key, 100 B value)") { benchmark in
        let command = PutCommand(key: key, value: value, ttl: 30)
        for _ in benchmark.scaledIterations {
            let buffer = Wire.encode(command)
            blackHole(try Wire.decode(PutCommand.self, from: buffer))
        }
    }

    Benchmark("native encode (16 B key, 100 B value)") { benchmark in
        let command = PutCommand(key: key, value: value, ttl: 30)
        var writer = WireWriter(capacity: 256)
        for _ in benchmark.scaledIterations {
            writer.buffer.clear()
            writer.write(command)
            blackHole(writer.buffer.readableBytes)
        }
    }

    Benchmark("Codable bridge encode+decode (16 B key, 100 B value)") { benchmark in
        let command = PutCodable(key: key, value: value, ttl: 30)
        let encoder = WireEncoder()
        let decoder = WireDecoder()
        for _ in benchmark.scaledIterations {
            let buffer = try encoder.encode(command)
            blackHole(try decoder.decode(PutCodable.self, from: buffer))
        }
    }

    Benchmark("baseline: Foundation JSON encode+decode (16 B key, 100 B value)") { benchmark in
        let command = PutCodable(key: key, value: value, ttl: 30)
        let encoder = JSONEncoder()
        let decoder = JSONDecoder()
        for _ in benchmark.scaledIterations {
            let data = try encoder.encode(command)
            blackHole(try decoder.decode(PutCodable.self, from: data))
        }
    }
}
