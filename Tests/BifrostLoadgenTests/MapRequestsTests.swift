import BifrostMap
import BifrostRaft
import BifrostWire
import Testing

@testable import BifrostLoadgenKit

/// `get(key:)`'s argument, as `MapClient` encodes it.
private struct KeyArgument: Codable {
    var key: String
}

/// `put(key:value:)`'s argument, as `MapClient` encodes it.
private struct KeyValueArgument: Codable {
    var key: String
    var value: [UInt8]
}

@Suite("The load generator's map requests")
struct MapRequestsTests {
    @Test("the completion-handler path sends the bytes and function ids MapClient sends")
    func sameRequests() throws {
        #expect(MapRequests.get == RPCFunctionID.of("ReplicatedMap.get(key:)"))
        #expect(MapRequests.put == RPCFunctionID.of("ReplicatedMap.put(key:value:context:)"))
        #expect(MapRequests.get != 0 && MapRequests.put != 0)
        let encoder = WireEncoder()
        for key in ["", "k", "key-0000000042", "ключ", String(repeating: "x", count: 300)] {
            #expect(MapRequests.argument(key: key) == (try encoder.encodeToBytes(KeyArgument(key: key))))
            for value in [[], [0], Array(repeating: UInt8(7), count: 100), Array(0...255)] as [[UInt8]] {
                #expect(
                    MapRequests.argument(key: key, value: value)
                        == (try encoder.encodeToBytes(KeyValueArgument(key: key, value: value))))
            }
        }
    }

    @Test("a reply is done when its value is a [UInt8]?, a protocol error when it is not, else the client's error")
    func outcomes() {
        #expect(MapRequests.outcome(.success((Wire.encodeToBytes([UInt8]?.none), 3))) == .success(.done))
        #expect(MapRequests.outcome(.success((Wire.encodeToBytes([UInt8]?.some([1])), 3))) == .success(.done))
        guard case .failure(let garbled) = MapRequests.outcome(.success(([9, 9, 9], 3))) else {
            Issue.record("a garbled value was taken as a result")
            return
        }
        #expect(garbled.kind == "protocol")
        let timeout = RaftClientError(code: .timeout, message: "late")
        #expect(MapRequests.outcome(.failure(timeout)) == .failure(LoadError(timeout)))
    }

    @Test("a put reply is done when its value is empty, a protocol error when it is not, else the client's error")
    func putOutcomes() {
        #expect(MapRequests.putOutcome(.success(([], 3))) == .success(.done))
        guard case .failure(let unexpected) = MapRequests.putOutcome(.success(([0], 3))) else {
            Issue.record("a put reply with a value was taken as a result")
            return
        }
        #expect(unexpected.kind == "protocol")
        let timeout = RaftClientError(code: .timeout, message: "late")
        #expect(MapRequests.putOutcome(.failure(timeout)) == .failure(LoadError(timeout)))
    }

    @Test("the in-place check of a result accepts exactly what the decoder accepts")
    func resultCheckMatchesDecoder() {
        var random = SplitMix64(seed: 0x5eed)
        var samples: [[UInt8]] = [[], [0], [1], [2], [0, 0], [1, 0], [1, 0x80], [1, 0x80, 0x00]]
        for length in [0, 1, 127, 128, 300] {
            let encoded = Wire.encodeToBytes([UInt8]?.some(Array(repeating: 9, count: length)))
            samples.append(encoded)
            samples.append(Array(encoded.dropLast()))
            samples.append(encoded + [0])
        }
        for _ in 0..<4000 {
            let count = Int(random.next() % 12)
            // Tag bytes of 1 are common, so that many samples get past the tag.
            samples.append(
                (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next() % 4 == 0 ? 1 : random.next()) })
        }
        for bytes in samples {
            // Not `try?`: it would flatten a decoded `nil` into a failure.
            let decodes: Bool
            do {
                _ = try Wire.decode([UInt8]?.self, fromBytes: bytes)
                decodes = true
            } catch {
                decodes = false
            }
            #expect(MapRequests.isOptionalByteString(bytes) == decodes, "\(bytes)")
        }
    }
}
