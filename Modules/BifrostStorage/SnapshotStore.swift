import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a snapshot covers: the group, the last log entry included, and the membership at that point.
public struct SnapshotMetadata: Hashable, Sendable {
    /// The Raft group the snapshot belongs to.
    public var groupID: UInt64
    /// The index of the last log entry whose effect is included.
    public var index: UInt64
    /// The term of the entry at ``index``.
    public var term: UInt64
    /// The membership configuration as of ``index`` (opaque; owned by the Raft core).
    public var configuration: [UInt8]

    /// Creates snapshot metadata.
    public init(groupID: UInt64, index: UInt64, term: UInt64, configuration: [UInt8]) {
        self.groupID = groupID
        self.index = index
        self.term = term
        self.configuration = configuration
    }
}

/// A directory of LZ4-compressed snapshot files, keeping the latest few snapshots of every group.
///
/// ## Files
///
/// `snapshot-<group>-<index>.bfsnap` (16 lowercase hex digits each) are complete, validated snapshots. Files
/// named `tmp-*` are saves or transfers in progress; a crash can leave them behind and they are deleted when a
/// store is opened. A `LOCK` file, held with `flock`, keeps a second process from using the directory at the
/// same time. The file format is described in `docs/storage.md`.
///
/// ## Crash safety
///
/// A snapshot is written to a temporary file, fsynced, renamed to its final name and the directory fsynced.
/// Until the rename, the previous snapshot remains the latest; after it, the new file is complete. Older
/// snapshots beyond ``Options/retainCount`` are deleted only after the new one is durable.
///
/// ## Concurrency
///
/// The store is `Sendable`; writers, readers and receivers are single-owner objects (not `Sendable`) that may be
/// used concurrently with each other. A reader keeps its file open, so pruning an old snapshot while it is being
/// read or sent is safe.
public final class SnapshotStore: Sendable {
    /// Options of a ``SnapshotStore``.
    public struct Options: Sendable {
        /// How many snapshots to keep per group, newest first (at least 1; default 2).
        public var retainCount: Int = 2
        /// The LZ4 frame compression level (0 = fast default; 3...12 = LZ4 HC, slower and smaller).
        public var compressionLevel: Int32 = 0

        /// Default options.
        public init() {}
    }

    /// The directory holding the snapshots.
    public let directory: String
    /// The options the store was opened with.
    public let options: Options
    /// The `flock`ed lock file descriptor; `nil` once closed.
    private let lock: Mutex<Int32?>
    /// Serialises installation (rename, directory fsync, pruning).
    private let installLock: Mutex<Void>
    private let tempCounter: Atomic<UInt64>

    static let fileExtension = ".bfsnap"

    /// Opens (creating when missing) the snapshot directory, takes its lock and deletes stale temporary files.
    ///
    /// - Parameter logger: receives a notice for each stale temporary file removed.
    /// - Throws: ``StorageError``: `.io` when the path is unusable, `.busy` when another process holds the lock.
    public init(
        directory: String, options: Options = Options(),
        logger: Logger = Logger(label: "bifrost.storage.snapshots")
    ) throws {
        try FileIO.makeDirectory(directory)
        let lockPath = directory + "/LOCK"
        let lockFD = try FileIO.openFile(lockPath, O_RDWR | O_CREAT)
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let error = FileIO.errnoError("lock", lockPath)
            FileIO.closeFile(lockFD)
            throw error
        }
        do {
            var removed = false
            for name in try FileIO.listDirectory(directory) where name.hasPrefix("tmp-") {
                try FileIO.unlinkFile(directory + "/" + name)
                logger.notice(
                    "removed an incomplete snapshot left by a crash",
                    metadata: ["directory": "\(directory)", "file": "\(name)"])
                removed = true
            }
            if removed { try FileIO.syncDirectory(directory) }
        } catch {
            FileIO.closeFile(lockFD)
            throw error
        }
        self.directory = directory
        var options = options
        options.retainCount = max(1, options.retainCount)
        self.options = options
        self.lock = Mutex(lockFD)
        self.installLock = Mutex(())
        self.tempCounter = Atomic(0)
    }

    deinit {
        self.close()
    }

    /// Releases the directory lock. Later calls throw `.closed`. Idempotent.
    public func close() {
        self.lock.withLock { fd in
            if let open = fd { FileIO.closeFile(open) }
            fd = nil
        }
    }

    // MARK: Saving

    /// Starts a new snapshot; stream its payload with ``SnapshotWriter/write(_:)-(UnsafeRawBufferPointer)`` and
    /// make it the latest with ``SnapshotWriter/finish()``.
    ///
    /// - Throws: ``StorageError`` `.invalidArgument` when the group already has a newer snapshot.
    public func beginSnapshot(_ metadata: SnapshotMetadata) throws -> SnapshotWriter {
        if let latest = try self.snapshotIndexes(groupID: metadata.groupID).last, latest > metadata.index {
            throw StorageError.invalidArgument(
                "snapshot \(metadata.index) of group \(metadata.groupID) is older than the latest (\(latest))")
        }
        return try SnapshotWriter(store: self, metadata: metadata, temporaryPath: self.temporaryPath(metadata.groupID))
    }

    /// Saves a snapshot whose payload is already in memory.
    public func save(_ metadata: SnapshotMetadata, payload: [UInt8]) throws {
        let writer = try self.beginSnapshot(metadata)
        try writer.write(payload)
        try writer.finish()
    }

    // MARK: Reading

    /// The indexes of the complete snapshots of `groupID`, oldest first.
    public func snapshotIndexes(groupID: UInt64) throws -> [UInt64] {
        try self.checkOpen()
        return try FileIO.listDirectory(self.directory).compactMap { Self.parseFileName($0, groupID: groupID) }
            .sorted()
    }

    /// Opens the latest snapshot of `groupID` for streaming its decompressed payload, or returns `nil` when the
    /// group has none.
    ///
    /// The header and footer are validated here; block and content checksums are verified while reading, and the
    /// last ``SnapshotReader/readChunk(maxBytes:)`` throws if they do not match. Apply a streamed snapshot to a
    /// fresh state and discard it on error. The latest snapshot never silently falls back to an older one: the
    /// log may already be compacted past it.
    ///
    /// - Throws: ``StorageError`` `.corruption` when the latest file is damaged.
    public func openLatest(groupID: UInt64) throws -> SnapshotReader? {
        guard let index = try self.snapshotIndexes(groupID: groupID).last else { return nil }
        let path = self.finalPath(groupID: groupID, index: index)
        return try SnapshotReader(path: path, expectedGroup: groupID)
    }

    /// The metadata of the latest snapshot of `groupID` (header and footer validated), or `nil`.
    public func latestMetadata(groupID: UInt64) throws -> SnapshotMetadata? {
        try self.openLatest(groupID: groupID)?.metadata
    }

    /// Reads the whole latest snapshot of `groupID`, verifying every checksum, without keeping the payload.
    ///
    /// - Returns: the metadata, or `nil` when the group has no snapshot.
    /// - Throws: ``StorageError`` `.corruption` when any part of the file is damaged.
    @discardableResult
    public func verifyLatest(groupID: UInt64) throws -> SnapshotMetadata? {
        guard let reader = try self.openLatest(groupID: groupID) else { return nil }
        try reader.verifyRemaining()
        return reader.metadata
    }

    // MARK: Shipping raw files

    /// Opens the latest snapshot file of `groupID` for sending its compressed bytes as they are, or `nil`.
    public func openLatestRaw(groupID: UInt64) throws -> RawSnapshotFile? {
        guard let index = try self.snapshotIndexes(groupID: groupID).last else { return nil }
        return try RawSnapshotFile(path: self.finalPath(groupID: groupID, index: index), expectedGroup: groupID)
    }

    /// Starts receiving the raw bytes of a snapshot file of `groupID` sent by ``RawSnapshotFile``. The file becomes
    /// the latest only after ``SnapshotReceiver/finish()`` validated all of it.
    public func beginReceiving(groupID: UInt64) throws -> SnapshotReceiver {
        try self.checkOpen()
        return try SnapshotReceiver(store: self, groupID: groupID, temporaryPath: self.temporaryPath(groupID))
    }

    // MARK: Internals

    func checkOpen() throws {
        try self.lock.withLock { fd in
            guard fd != nil else { throw StorageError.closed("snapshot store \(self.directory) is closed") }
        }
    }

    private func temporaryPath(_ groupID: UInt64) -> String {
        let counter = self.tempCounter.wrappingAdd(1, ordering: .relaxed).newValue
        return "\(self.directory)/tmp-\(hex16(groupID))-\(getpid())-\(counter)\(Self.fileExtension)"
    }

    func finalPath(groupID: UInt64, index: UInt64) -> String {
        "\(self.directory)/snapshot-\(hex16(groupID))-\(hex16(index))\(Self.fileExtension)"
    }

    static func parseFileName(_ name: String, groupID: UInt64) -> UInt64? {
        let prefix = "snapshot-\(hex16(groupID))-"
        guard name.hasPrefix(prefix), name.hasSuffix(Self.fileExtension) else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(Self.fileExtension.count)
        guard digits.count == 16 else { return nil }
        return UInt64(digits, radix: 16)
    }

    /// Makes a complete, fsynced temporary file the snapshot `(groupID, index)` and prunes old ones.
    func install(temporaryPath: String, metadata: SnapshotMetadata) throws {
        try self.checkOpen()
        try self.installLock.withLock { _ in
            let existing = try self.snapshotIndexes(groupID: metadata.groupID)
            if let latest = existing.last, latest > metadata.index {
                throw StorageError.invalidArgument(
                    "snapshot \(metadata.index) of group \(metadata.groupID) is older than the latest (\(latest))")
            }
            try FileIO.renameFile(temporaryPath, self.finalPath(groupID: metadata.groupID, index: metadata.index))
            try FileIO.syncDirectory(self.directory)
            let all = Set(existing + [metadata.index]).sorted()
            let stale = all.dropLast(self.options.retainCount)
            for index in stale {
                try FileIO.unlinkFile(self.finalPath(groupID: metadata.groupID, index: index))
            }
            if !stale.isEmpty { try FileIO.syncDirectory(self.directory) }
        }
    }
}

func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

// MARK: - File format

/// The snapshot file format (see `docs/storage.md`).
///
/// ```
/// header:  magic "BFSNAPv1" (8) | header length H (4) | group (8) | index (8) | term (8)
///          | configuration length c (4) | configuration (c) | CRC-32C of the preceding header bytes (4)
/// frame:   one LZ4 frame (block checksums and content checksum enabled)
/// footer:  magic "BFSNEND1" (8) | payload length (8) | frame length (8) | header CRC (4)
///          | CRC-32C of the preceding 28 footer bytes (4)
/// ```
/// All integers big-endian; `H = 44 + c`; the file size is `H + frame length + 32`.
enum SnapshotFormat {
    static let headerMagic = Array("BFSNAPv1".utf8)
    static let footerMagic = Array("BFSNEND1".utf8)
    static let fixedHeaderSize = 44
    static let footerSize = 32
    /// Upper bound for the configuration blob, so a damaged length cannot make us allocate gigabytes.
    static let maxConfigurationSize = 64 << 20

    static func encodeHeader(_ metadata: SnapshotMetadata) throws -> [UInt8] {
        guard metadata.configuration.count <= Self.maxConfigurationSize else {
            throw StorageError.invalidArgument(
                "snapshot configuration of \(metadata.configuration.count) bytes exceeds \(Self.maxConfigurationSize)")
        }
        var header = Self.headerMagic
        header.appendBigEndian(UInt32(Self.fixedHeaderSize + metadata.configuration.count))
        header.appendBigEndian(metadata.groupID)
        header.appendBigEndian(metadata.index)
        header.appendBigEndian(metadata.term)
        header.appendBigEndian(UInt32(metadata.configuration.count))
        header.append(contentsOf: metadata.configuration)
        header.appendBigEndian(CRC32C.checksum(header))
        return header
    }

    static func encodeFooter(payloadLength: UInt64, frameLength: UInt64, headerCRC: UInt32) -> [UInt8] {
        var footer = Self.footerMagic
        footer.appendBigEndian(payloadLength)
        footer.appendBigEndian(frameLength)
        footer.appendBigEndian(headerCRC)
        footer.appendBigEndian(CRC32C.checksum(footer))
        return footer
    }

    /// The validated layout of a snapshot file.
    struct Layout {
        var metadata: SnapshotMetadata
        var headerLength: UInt64
        var frameLength: UInt64
        var payloadLength: UInt64
        var fileSize: UInt64
    }

    /// Reads and validates the header and footer of an open snapshot file.
    static func readLayout(fd: Int32, path: String) throws -> Layout {
        let fileSize = try FileIO.size(fd, path: path)
        guard fileSize >= UInt64(Self.fixedHeaderSize + Self.footerSize) else {
            throw StorageError.corruption("\(path): snapshot file of \(fileSize) bytes is truncated")
        }
        let fixed = try FileIO.readExactly(fd, count: 40, at: 0, path: path, what: "snapshot header")
        guard Array(fixed[0..<8]) == Self.headerMagic else {
            throw StorageError.corruption("\(path): bad snapshot magic")
        }
        let (headerLength, group, index, term, configurationLength) = fixed.withUnsafeBytes {
            (
                UInt64($0.readBigEndianUInt32(at: 8)), $0.readBigEndianUInt64(at: 12), $0.readBigEndianUInt64(at: 20),
                $0.readBigEndianUInt64(at: 28), UInt64($0.readBigEndianUInt32(at: 36))
            )
        }
        guard configurationLength <= UInt64(Self.maxConfigurationSize),
            headerLength == UInt64(Self.fixedHeaderSize) + configurationLength,
            headerLength + UInt64(Self.footerSize) <= fileSize
        else {
            throw StorageError.corruption("\(path): bad snapshot header lengths")
        }
        let rest = try FileIO.readExactly(
            fd, count: Int(configurationLength) + 4, at: 40, path: path, what: "snapshot header")
        var crc = CRC32C()
        crc.update(fixed)
        crc.update(rest[0..<Int(configurationLength)])
        let storedHeaderCRC = rest.withUnsafeBytes { $0.readBigEndianUInt32(at: Int(configurationLength)) }
        guard crc.value == storedHeaderCRC else {
            throw StorageError.corruption("\(path): snapshot header checksum mismatch")
        }
        let footer = try FileIO.readExactly(
            fd, count: Self.footerSize, at: fileSize - UInt64(Self.footerSize), path: path, what: "snapshot footer")
        guard Array(footer[0..<8]) == Self.footerMagic else {
            throw StorageError.corruption("\(path): bad snapshot footer magic (truncated file?)")
        }
        let (payloadLength, frameLength, footerHeaderCRC, footerCRC) = footer.withUnsafeBytes {
            (
                $0.readBigEndianUInt64(at: 8), $0.readBigEndianUInt64(at: 16), $0.readBigEndianUInt32(at: 24),
                $0.readBigEndianUInt32(at: 28)
            )
        }
        guard CRC32C.checksum(footer[0..<28]) == footerCRC else {
            throw StorageError.corruption("\(path): snapshot footer checksum mismatch")
        }
        guard footerHeaderCRC == storedHeaderCRC else {
            throw StorageError.corruption("\(path): snapshot footer does not belong to its header")
        }
        guard frameLength == fileSize - headerLength - UInt64(Self.footerSize) else {
            throw StorageError.corruption("\(path): snapshot frame length does not match the file size")
        }
        let configuration = Array(rest[0..<Int(configurationLength)])
        return Layout(
            metadata: SnapshotMetadata(groupID: group, index: index, term: term, configuration: configuration),
            headerLength: headerLength, frameLength: frameLength, payloadLength: payloadLength, fileSize: fileSize)
    }
}

// MARK: - Writer

/// Streams the payload of a new snapshot into a temporary file, compressing it on the fly.
///
/// Memory use is bounded (about 2 MiB of LZ4 buffers) whatever the payload size. Call ``finish()`` to make the
/// snapshot durable and the latest of its group, or ``abort()`` to discard it; a writer dropped without either is
/// aborted. After an error the writer is unusable and its temporary file is removed.
public final class SnapshotWriter {
    /// The metadata of the snapshot being written.
    public let metadata: SnapshotMetadata
    private let store: SnapshotStore
    private let temporaryPath: String
    private var fd: Int32?
    private let encoder: LZ4FrameEncoder
    private let headerCRC: UInt32
    private var payloadLength: UInt64 = 0
    private var frameLength: UInt64 = 0

    init(store: SnapshotStore, metadata: SnapshotMetadata, temporaryPath: String) throws {
        let header = try SnapshotFormat.encodeHeader(metadata)
        self.headerCRC = header.withUnsafeBytes { $0.readBigEndianUInt32(at: header.count - 4) }
        self.metadata = metadata
        self.store = store
        self.temporaryPath = temporaryPath
        self.encoder = try LZ4FrameEncoder(compressionLevel: store.options.compressionLevel)
        let fd = try FileIO.openFile(temporaryPath, O_WRONLY | O_CREAT | O_EXCL)
        self.fd = fd
        do {
            try header.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: temporaryPath) }
            try self.encoder.begin { try self.emitFrame($0) }
        } catch {
            self.abort()
            throw error
        }
    }

    deinit {
        self.abort()
    }

    /// The number of uncompressed payload bytes written so far.
    public var bytesWritten: UInt64 { self.payloadLength }

    /// Appends payload bytes.
    public func write(_ chunk: UnsafeRawBufferPointer) throws {
        try self.checkOpen()
        do {
            try self.encoder.update(chunk) { try self.emitFrame($0) }
            self.payloadLength += UInt64(chunk.count)
        } catch {
            self.abort()
            throw error
        }
    }

    /// Appends payload bytes.
    public func write(_ chunk: [UInt8]) throws {
        try chunk.withUnsafeBytes { try self.write($0) }
    }

    /// Completes the file (frame end and footer), fsyncs it, renames it into place, fsyncs the directory and prunes
    /// snapshots beyond the retain count. When this returns, the snapshot survives a machine crash.
    ///
    /// - Throws: ``StorageError`` `.invalidArgument` when a newer snapshot of the group was installed meanwhile.
    @discardableResult
    public func finish() throws -> SnapshotMetadata {
        let fd = try self.checkOpen()
        do {
            try self.encoder.end { try self.emitFrame($0) }
            let footer = SnapshotFormat.encodeFooter(
                payloadLength: self.payloadLength, frameLength: self.frameLength, headerCRC: self.headerCRC)
            try footer.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: self.temporaryPath) }
            try FileIO.syncFile(fd, path: self.temporaryPath)
            FileIO.closeFile(fd)
            self.fd = nil
            try self.store.install(temporaryPath: self.temporaryPath, metadata: self.metadata)
            return self.metadata
        } catch {
            self.abort()
            throw error
        }
    }

    /// Discards the snapshot and removes its temporary file. Idempotent.
    public func abort() {
        if let fd = self.fd {
            FileIO.closeFile(fd)
            self.fd = nil
        }
        // Removing a file that was already renamed into place fails with ENOENT; that is fine.
        _ = try? FileIO.unlinkFile(self.temporaryPath)
    }

    @discardableResult
    private func checkOpen() throws -> Int32 {
        guard let fd = self.fd else {
            throw StorageError.invalidArgument("snapshot writer for \(self.metadata.index) is finished or aborted")
        }
        return fd
    }

    private func emitFrame(_ bytes: UnsafeRawBufferPointer) throws {
        let fd = try self.checkOpen()
        try FileIO.writeAll(fd, bytes, path: self.temporaryPath)
        self.frameLength += UInt64(bytes.count)
    }
}

// MARK: - Reader

/// Streams the decompressed payload of a snapshot file.
///
/// Block checksums are verified as blocks are decoded; the content checksum, the payload length and the absence of
/// trailing bytes are verified when the end is reached, so the call that would return the end (`nil`) throws
/// instead when any of them fails.
public final class SnapshotReader {
    /// The snapshot's metadata (validated by the header checksum).
    public let metadata: SnapshotMetadata
    /// The uncompressed payload size recorded in the footer.
    public let payloadLength: UInt64
    /// The compressed file size.
    public let fileSize: UInt64
    private let path: String
    private let fd: Int32
    private let decoder: LZ4FrameDecoder
    private var input: [UInt8]
    private var inputStart = 0
    private var inputEnd = 0
    private var nextFrameOffset: UInt64
    private let frameEnd: UInt64
    private var produced: UInt64 = 0
    private var reachedEnd = false

    init(path: String, expectedGroup: UInt64?) throws {
        let fd = try FileIO.openFile(path, O_RDONLY)
        do {
            let layout = try SnapshotFormat.readLayout(fd: fd, path: path)
            if let expectedGroup, layout.metadata.groupID != expectedGroup {
                throw StorageError.corruption(
                    "\(path): snapshot belongs to group \(layout.metadata.groupID), expected \(expectedGroup)")
            }
            self.metadata = layout.metadata
            self.payloadLength = layout.payloadLength
            self.fileSize = layout.fileSize
            self.nextFrameOffset = layout.headerLength
            self.frameEnd = layout.headerLength + layout.frameLength
            self.decoder = try LZ4FrameDecoder()
        } catch {
            FileIO.closeFile(fd)
            throw error
        }
        self.path = path
        self.fd = fd
        self.input = [UInt8](repeating: 0, count: 256 << 10)
    }

    deinit {
        FileIO.closeFile(self.fd)
    }

    /// Returns up to `maxBytes` (at least 1) of decompressed payload, or `nil` once the whole payload was returned
    /// and verified.
    ///
    /// - Throws: ``StorageError`` `.corruption` on any checksum mismatch, truncation or inconsistency.
    public func readChunk(maxBytes: Int) throws -> [UInt8]? {
        guard maxBytes > 0 else { throw StorageError.invalidArgument("maxBytes must be positive") }
        if self.reachedEnd { return nil }
        let capacity = Int(min(UInt64(maxBytes), max(1, self.payloadLength - min(self.produced, self.payloadLength))))
        var failure: (any Error)? = nil
        let chunk = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            do {
                count = try self.fill(UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        if chunk.isEmpty {
            if self.decoder.isFinished { return nil }
            throw StorageError.internal("\(self.path): LZ4 decoder made no progress")
        }
        return chunk
    }

    /// Reads and verifies the rest of the payload without keeping it.
    public func verifyRemaining() throws {
        while try self.readChunk(maxBytes: 1 << 20) != nil {}
    }

    /// Decodes into `output` until it is full or the frame ends; returns the bytes produced.
    private func fill(_ output: UnsafeMutableRawBufferPointer) throws -> Int {
        var count = 0
        var stalls = 0
        while count < output.count && !self.decoder.isFinished {
            if self.inputStart == self.inputEnd {
                try self.refill()
            }
            let (consumed, producedNow) = try self.input.withUnsafeBytes { input in
                try self.decoder.decode(
                    UnsafeRawBufferPointer(rebasing: input[self.inputStart..<self.inputEnd]),
                    into: UnsafeMutableRawBufferPointer(rebasing: output[count...]))
            }
            self.inputStart += consumed
            count += producedNow
            self.produced += UInt64(producedNow)
            guard self.produced <= self.payloadLength else {
                throw StorageError.corruption("\(self.path): payload is longer than the footer says")
            }
            if consumed == 0 && producedNow == 0 {
                stalls += 1
                if stalls > 2 { throw StorageError.internal("\(self.path): LZ4 decoder made no progress") }
            } else {
                stalls = 0
            }
        }
        if self.decoder.isFinished {
            guard self.inputStart == self.inputEnd, self.nextFrameOffset == self.frameEnd else {
                throw StorageError.corruption("\(self.path): trailing bytes after the LZ4 frame")
            }
            guard self.produced == self.payloadLength else {
                throw StorageError.corruption(
                    "\(self.path): payload is \(self.produced) bytes, the footer says \(self.payloadLength)")
            }
            if count == 0 { self.reachedEnd = true }
        }
        return count
    }

    private func refill() throws {
        guard self.nextFrameOffset < self.frameEnd else {
            throw StorageError.corruption("\(self.path): LZ4 frame is truncated")
        }
        let want = Int(min(UInt64(self.input.count), self.frameEnd - self.nextFrameOffset))
        let read = try self.input.withUnsafeMutableBytes { buffer in
            try FileIO.readFully(
                self.fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: self.nextFrameOffset,
                path: self.path)
        }
        guard read == want else {
            throw StorageError.corruption("\(self.path): snapshot file shrank while reading")
        }
        self.inputStart = 0
        self.inputEnd = read
        self.nextFrameOffset += UInt64(read)
    }
}

// MARK: - Raw transfer

/// The compressed bytes of a snapshot file, for sending to a follower unchanged.
///
/// Only the header and footer are validated on open (the receiver validates everything before installing).
///
/// `@unchecked Sendable`: every stored property is a constant, and reads use `pread` at explicit offsets on a
/// descriptor that stays open until the object is deallocated, so concurrent reads from any thread are safe.
public final class RawSnapshotFile: @unchecked Sendable {
    /// The snapshot's metadata.
    public let metadata: SnapshotMetadata
    /// The total file size in bytes; chunks cover `[0, size)`.
    public let size: UInt64
    private let path: String
    private let fd: Int32

    init(path: String, expectedGroup: UInt64) throws {
        let fd = try FileIO.openFile(path, O_RDONLY)
        do {
            let layout = try SnapshotFormat.readLayout(fd: fd, path: path)
            guard layout.metadata.groupID == expectedGroup else {
                throw StorageError.corruption("\(path): snapshot belongs to group \(layout.metadata.groupID)")
            }
            self.metadata = layout.metadata
            self.size = layout.fileSize
        } catch {
            FileIO.closeFile(fd)
            throw error
        }
        self.path = path
        self.fd = fd
    }

    deinit {
        FileIO.closeFile(self.fd)
    }

    /// Returns up to `maxBytes` of the file starting at `offset` (empty at or beyond the end).
    public func readRawChunk(offset: UInt64, maxBytes: Int) throws -> [UInt8] {
        guard maxBytes > 0 else { throw StorageError.invalidArgument("maxBytes must be positive") }
        guard offset < self.size else { return [] }
        let count = Int(min(UInt64(maxBytes), self.size - offset))
        var bytes = [UInt8](repeating: 0, count: count)
        let read = try bytes.withUnsafeMutableBytes {
            try FileIO.readFully(self.fd, into: $0, at: offset, path: self.path)
        }
        guard read == count else { throw StorageError.corruption("\(self.path): file shrank while reading") }
        return bytes
    }
}

/// Receives the raw bytes of a snapshot file and installs it once fully validated.
///
/// Chunks are written to a temporary file. ``finish()`` checks the header, footer, every LZ4 block checksum, the
/// content checksum and the payload length, then fsyncs and renames the file into place; a transfer that fails
/// validation never becomes the latest snapshot. Dropping the receiver without finishing aborts it.
public final class SnapshotReceiver {
    /// The group the snapshot must belong to.
    public let groupID: UInt64
    private let store: SnapshotStore
    private let temporaryPath: String
    private var fd: Int32?
    /// The number of bytes received so far (the offset the next chunk must start at).
    public private(set) var receivedBytes: UInt64 = 0

    init(store: SnapshotStore, groupID: UInt64, temporaryPath: String) throws {
        self.store = store
        self.groupID = groupID
        self.temporaryPath = temporaryPath
        self.fd = try FileIO.openFile(temporaryPath, O_WRONLY | O_CREAT | O_EXCL)
    }

    deinit {
        self.abort()
    }

    /// Writes a chunk that starts at `offset` in the sender's file.
    ///
    /// Chunks must arrive in order. A chunk entirely below ``receivedBytes`` (a retransmission) is ignored; one that
    /// overlaps it contributes only its new tail.
    ///
    /// - Throws: ``StorageError`` `.invalidArgument` when `offset` is beyond ``receivedBytes`` (a gap).
    public func receive(rawChunk: [UInt8], at offset: UInt64) throws {
        guard let fd = self.fd else {
            throw StorageError.invalidArgument("snapshot receiver is finished or aborted")
        }
        guard offset <= self.receivedBytes else {
            throw StorageError.invalidArgument(
                "snapshot chunk at \(offset) leaves a gap after \(self.receivedBytes) received bytes")
        }
        let end = offset + UInt64(rawChunk.count)
        guard end > self.receivedBytes else { return }
        let skip = Int(self.receivedBytes - offset)
        do {
            try rawChunk.withUnsafeBytes {
                try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[skip...]), path: self.temporaryPath)
            }
        } catch {
            self.abort()
            throw error
        }
        self.receivedBytes = end
    }

    /// Validates the received file completely and makes it the latest snapshot of ``groupID``.
    ///
    /// - Returns: the installed snapshot's metadata.
    /// - Throws: ``StorageError`` `.corruption` when the file is incomplete or damaged (it is then discarded).
    @discardableResult
    public func finish() throws -> SnapshotMetadata {
        guard let fd = self.fd else {
            throw StorageError.invalidArgument("snapshot receiver is finished or aborted")
        }
        do {
            try FileIO.syncFile(fd, path: self.temporaryPath)
            FileIO.closeFile(fd)
            self.fd = nil
            let reader = try SnapshotReader(path: self.temporaryPath, expectedGroup: self.groupID)
            try reader.verifyRemaining()
            try self.store.install(temporaryPath: self.temporaryPath, metadata: reader.metadata)
            return reader.metadata
        } catch {
            self.abort()
            throw error
        }
    }

    /// Discards the transfer and its temporary file. Idempotent.
    public func abort() {
        if let fd = self.fd {
            FileIO.closeFile(fd)
            self.fd = nil
        }
        _ = try? FileIO.unlinkFile(self.temporaryPath)
    }
}
