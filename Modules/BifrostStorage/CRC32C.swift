import CBifrostCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI, ext4 and RocksDB.
///
/// Computed by the processor's CRC-32C instruction where there is one (x86-64 with SSE4.2, Armv8 with the CRC
/// extension), in software (slicing-by-8) elsewhere; both give the same values.
/// `CRC32C.checksum("123456789".utf8) == 0xE306_9283`.
public struct CRC32C: Sendable {
    /// Whether ``update(_:)-(UnsafeRawBufferPointer)`` uses the processor's instruction.
    public static let usesHardware = bifrost_crc32c_hardware_available() != 0

    /// The running state (already inverted).
    private var state: UInt32 = 0xFFFF_FFFF

    /// Creates a fresh checksum.
    public init() {}

    /// The checksum of everything fed so far.
    public var value: UInt32 { ~self.state }

    /// Feeds bytes into the checksum.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        if Self.usesHardware {
            self.state = bifrost_crc32c_hardware_update(self.state, base, bytes.count)
        } else {
            updateInSoftware(bytes)
        }
    }

    /// Feeds bytes into the checksum with the software path (slicing-by-8), whatever the processor.
    mutating func updateInSoftware(_ bytes: UnsafeRawBufferPointer) {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        var crc = self.state
        let table = crc32cTables
        while remaining >= 8 {
            let low = pointer.loadUnaligned(as: UInt32.self).littleEndian ^ crc
            let high = pointer.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
            crc =
                table[7 &* 256 &+ Int(low & 0xFF)] ^ table[6 &* 256 &+ Int((low >> 8) & 0xFF)]
                ^ table[5 &* 256 &+ Int((low >> 16) & 0xFF)] ^ table[4 &* 256 &+ Int(low >> 24)]
                ^ table[3 &* 256 &+ Int(high & 0xFF)] ^ table[2 &* 256 &+ Int((high >> 8) & 0xFF)]
                ^ table[1 &* 256 &+ Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
            pointer += 8
            remaining &-= 8
        }
        while remaining > 0 {
            let byte = pointer.load(as: UInt8.self)
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
            pointer += 1
            remaining &-= 1
        }
        self.state = crc
    }

    /// Feeds bytes into the checksum.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            self.update(UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { self.update($0) }
        }
    }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }
}

/// Eight 256-entry tables for slicing-by-8, laid out contiguously (table k at offset k * 256).
private let crc32cTables: [UInt32] = {
    let polynomial: UInt32 = 0x82F6_3B78
    var tables = [UInt32](repeating: 0, count: 8 * 256)
    for index in 0..<256 {
        var crc = UInt32(index)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
        }
        tables[index] = crc
    }
    for index in 0..<256 {
        var crc = tables[index]
        for slice in 1..<8 {
            crc = tables[Int(crc & 0xFF)] ^ (crc >> 8)
            tables[slice * 256 + index] = crc
        }
    }
    return tables
}()
