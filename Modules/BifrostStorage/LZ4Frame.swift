import CLZ4

/// Streaming LZ4 frame compression (`LZ4F_compressBegin/Update/End`).
///
/// Frames use 1 MiB linked blocks with per-block checksums and a content checksum (xxHash32 of the uncompressed
/// content), so `lz4 -d` can decompress the frame section of a snapshot file and every bit flip is detected.
/// Not thread-safe; owned by one ``SnapshotWriter``.
final class LZ4FrameEncoder {
    private let context: OpaquePointer
    private var preferences: LZ4F_preferences_t
    /// Output scratch space, large enough for one `update` of ``sliceSize`` bytes or for `end`.
    private let output: UnsafeMutableRawBufferPointer
    /// The largest input handed to one `LZ4F_compressUpdate` call.
    static let sliceSize = 1 << 20

    init(compressionLevel: Int32) throws {
        var context: OpaquePointer? = nil
        let status = LZ4F_createCompressionContext(&context, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(status) == 0, let context else {
            throw StorageError.internal("LZ4F_createCompressionContext failed: \(lz4ErrorName(status))")
        }
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max1MB
        preferences.frameInfo.blockMode = LZ4F_blockLinked
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled
        preferences.compressionLevel = compressionLevel
        let capacity = max(
            Int(LZ4F_HEADER_SIZE_MAX), LZ4F_compressBound(Self.sliceSize, &preferences),
            LZ4F_compressBound(0, &preferences))
        self.context = context
        self.preferences = preferences
        self.output = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        LZ4F_freeCompressionContext(self.context)
        self.output.deallocate()
    }

    /// Starts the frame; `emit` receives the frame header.
    func begin(_ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let written = LZ4F_compressBegin(self.context, self.output.baseAddress, self.output.count, &self.preferences)
        try self.emit(written, "LZ4F_compressBegin", emit)
    }

    /// Compresses `input`; `emit` receives compressed bytes (possibly none: LZ4 buffers up to one block).
    func update(_ input: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        while offset < input.count {
            let count = min(Self.sliceSize, input.count - offset)
            let written = LZ4F_compressUpdate(
                self.context, self.output.baseAddress, self.output.count, input.baseAddress.map { $0 + offset },
                count, nil)
            try self.emit(written, "LZ4F_compressUpdate", emit)
            offset += count
        }
    }

    /// Ends the frame; `emit` receives the last block, the end mark and the content checksum.
    func end(_ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let written = LZ4F_compressEnd(self.context, self.output.baseAddress, self.output.count, nil)
        try self.emit(written, "LZ4F_compressEnd", emit)
    }

    private func emit(_ result: Int, _ operation: String, _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard LZ4F_isError(result) == 0 else {
            throw StorageError.internal("\(operation) failed: \(lz4ErrorName(result))")
        }
        if result > 0 {
            try emit(UnsafeRawBufferPointer(rebasing: self.output[0..<result]))
        }
    }
}

/// Streaming LZ4 frame decompression (`LZ4F_decompress`). Any malformed input, including a block or content
/// checksum mismatch, is reported as `.corruption`. Not thread-safe.
final class LZ4FrameDecoder {
    private let context: OpaquePointer
    /// Whether the end of the frame (end mark and content checksum) has been decoded and verified.
    private(set) var isFinished = false

    init() throws {
        var context: OpaquePointer? = nil
        let status = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(status) == 0, let context else {
            throw StorageError.internal("LZ4F_createDecompressionContext failed: \(lz4ErrorName(status))")
        }
        self.context = context
    }

    deinit {
        LZ4F_freeDecompressionContext(self.context)
    }

    /// Decodes from `input` into `output`; returns (consumed input bytes, produced output bytes).
    func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> (Int, Int) {
        guard !self.isFinished else { return (0, 0) }
        var outputCount = output.count
        var inputCount = input.count
        let hint = LZ4F_decompress(
            self.context, output.baseAddress, &outputCount, input.baseAddress, &inputCount, nil)
        guard LZ4F_isError(hint) == 0 else {
            throw StorageError.corruption("LZ4 frame is invalid: \(lz4ErrorName(hint))")
        }
        if hint == 0 { self.isFinished = true }
        return (inputCount, outputCount)
    }
}

private func lz4ErrorName(_ code: Int) -> String {
    guard let name = LZ4F_getErrorName(code) else { return "error \(code)" }
    return String(cString: name)
}
