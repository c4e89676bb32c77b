import Foundation
import Testing

@testable import BifrostStorage

@Suite("CRC32C and LogEntry layout")
struct CoreTests {
    @Test("CRC-32C matches the standard check value")
    func crcCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // Incremental updates at odd split points give the same result as one pass.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var crc = CRC32C()
        crc.update(data[0..<3])
        crc.update(data[3..<517])
        crc.update(data[517...])
        #expect(crc.value == CRC32C.checksum(data))
    }

    @Test("the processor's CRC-32C instruction and the software path agree at every length and alignment")
    func crcHardwareMatchesSoftware() {
        var generator = SystemRandomNumberGenerator()
        let data = (0..<4200).map { _ in UInt8.random(in: 0...255, using: &generator) }
        data.withUnsafeBytes { all in
            for start in 0..<9 {
                for count in [0, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096, 4191 - start] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                    var software = CRC32C()
                    software.updateInSoftware(slice)
                    #expect(CRC32C.checksum(slice) == software.value, "start \(start), count \(count)")
                }
            }
        }
        var software = CRC32C()
        Array("123456789".utf8).withUnsafeBytes { software.updateInSoftware($0) }
        #expect(software.value == 0xE306_9283)
        // This machine kind (x86-64) has the instruction; a processor without it uses the software path alone.
        #if arch(x86_64)
        #expect(CRC32C.usesHardware)
        #endif
    }

    @Test("LogEntry encodes to the documented layout and round-trips")
    func entryLayout() throws {
        let entry = LogEntry(index: 0x0102_0304_0506_0708, term: 9, payload: [0xAA, 0xBB])
        let bytes = try entry.encoded()
        #expect(bytes.count == 27)
        #expect(bytes[0] == 1)
        #expect(Array(bytes[1..<9]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(bytes[9..<17]) == [0, 0, 0, 0, 0, 0, 0, 9])
        #expect(Array(bytes[17..<21]) == [0, 0, 0, 2])
        #expect(Array(bytes[21..<23]) == [0xAA, 0xBB])
        let crc = CRC32C.checksum(bytes[0..<23])
        #expect(
            Array(bytes[23..<27]) == [
                UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF),
            ])
        #expect(try LogEntry(decoding: bytes) == entry)
    }

    @Test("A flipped bit or truncation in an encoded entry is corruption")
    func entryCorruption() throws {
        let bytes = try LogEntry(index: 5, term: 2, payload: Array(repeating: 7, count: 40)).encoded()
        for position in bytes.indices {
            var damaged = bytes
            damaged[position] ^= 0x10
            expectStorageError(.corruption) { _ = try LogEntry(decoding: damaged) }
        }
        for length in [0, 1, 24, bytes.count - 1] {
            expectStorageError(.corruption) { _ = try LogEntry(decoding: Array(bytes[0..<length])) }
        }
    }
}
