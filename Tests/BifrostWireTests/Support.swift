import BifrostWire
import NIOCore
import Testing

/// Checks the properties every encoding must have, for one value:
/// - it decodes back to an equal value, consuming every byte;
/// - every strict prefix fails to decode with a `WireError` (encodings are self-delimiting);
/// - re-encoding the decoded value gives the same bytes (canonical).
func checkNative<T: WireCodable & Equatable>(
    _ value: T,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let bytes = Wire.encodeToBytes(value)
    do {
        let decoded = try Wire.decode(T.self, fromBytes: bytes)
        #expect(decoded == value, "round trip of \(value)", sourceLocation: sourceLocation)
        #expect(Wire.encodeToBytes(decoded) == bytes, "re-encoding \(value)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("decoding \(value) threw \(error)", sourceLocation: sourceLocation)
    }
    checkPrefixesFail(bytes, as: T.self, sourceLocation: sourceLocation)
}

/// The same properties through the `Codable` bridge.
func checkCodable<T: Codable & Equatable>(
    _ value: T,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let bytes = try WireEncoder().encodeToBytes(value)
        let decoded = try WireDecoder().decode(T.self, fromBytes: bytes)
        #expect(decoded == value, "round trip of \(value)", sourceLocation: sourceLocation)
        #expect(try WireEncoder().encodeToBytes(decoded) == bytes, sourceLocation: sourceLocation)
        for cut in 0..<bytes.count {
            #expect(throws: WireError.self, "prefix \(cut)/\(bytes.count)", sourceLocation: sourceLocation) {
                try WireDecoder().decode(T.self, fromBytes: bytes[0..<cut])
            }
        }
    } catch {
        Issue.record("\(value) threw \(error)", sourceLocation: sourceLocation)
    }
}

func checkPrefixesFail<T: WireDecodable>(
    _ bytes: [UInt8],
    as type: T.Type,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    for cut in 0..<bytes.count {
        #expect(throws: WireError.self, "prefix \(cut)/\(bytes.count) of \(T.self)", sourceLocation: sourceLocation) {
            try Wire.decode(T.self, fromBytes: bytes[0..<cut])
        }
    }
}

/// A small deterministic generator (SplitMix64) for the tests that need their own randomness.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// The code of the error that decoding `bytes` as `T` throws, or nil if it decodes.
func errorCode<T: WireDecodable>(_ type: T.Type, _ bytes: [UInt8]) -> WireError.Code? {
    do {
        _ = try Wire.decode(T.self, fromBytes: bytes)
        return nil
    } catch {
        return error.code
    }
}
