#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin POSIX helpers that turn `errno` into ``StorageError``.
enum FileIO {
    static func errnoError(_ operation: String, _ path: String, code: Int32 = errno) -> StorageError {
        let reason = String(cString: strerror(code))
        let errorCode: StorageError.Code =
            switch code {
            case ENOENT: .notFound
            case EWOULDBLOCK: .busy
            default: .io
            }
        return StorageError(code: errorCode, message: "\(operation) \(path): \(reason)")
    }

    /// Opens `path` with `flags`, retrying on EINTR.
    static func openFile(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        while true {
            let fd = open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw errnoError("open", path)
        }
    }

    /// Writes all of `buffer`, retrying on short writes and EINTR.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard var pointer = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let written = write(fd, pointer, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw errnoError("write", path)
            }
            pointer += written
            remaining -= written
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    static func readFully(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, path: String
    )
        throws -> Int
    {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let count = pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw errnoError("read", path)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Reads exactly `count` bytes at `offset` or throws `.corruption` (the file is shorter than its layout says).
    static func readExactly(_ fd: Int32, count: Int, at offset: UInt64, path: String, what: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let read = try bytes.withUnsafeMutableBytes { try readFully(fd, into: $0, at: offset, path: path) }
        guard read == count else {
            throw StorageError.corruption("\(path): truncated \(what) (\(read) of \(count) bytes)")
        }
        return bytes
    }

    static func syncFile(_ fd: Int32, path: String) throws {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw errnoError("fsync", path)
        }
    }

    static func size(_ fd: Int32, path: String) throws -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw errnoError("fstat", path) }
        return UInt64(info.st_size)
    }

    static func closeFile(_ fd: Int32) {
        _ = close(fd)
    }

    /// Fsyncs a directory so that renames and unlinks inside it are durable.
    static func syncDirectory(_ path: String) throws {
        let fd = try openFile(path, O_RDONLY | O_DIRECTORY)
        defer { closeFile(fd) }
        try syncFile(fd, path: path)
    }

    static func renameFile(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else { throw errnoError("rename to \(to)", from) }
    }

    static func unlinkFile(_ path: String) throws {
        guard unlink(path) == 0 else { throw errnoError("unlink", path) }
    }

    /// Creates `path` as a directory unless it already is one. A new directory's entry in its parent is fsynced,
    /// so that files made durable inside it cannot vanish with it in a machine crash.
    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) == 0 {
            var parent = String(path.reversed().drop(while: { $0 == "/" }).reversed())
            if let slash = parent.lastIndex(of: "/") {
                parent = slash == parent.startIndex ? "/" : String(parent[..<slash])
            } else {
                parent = "."
            }
            try syncDirectory(parent)
            return
        }
        let code = errno
        var info = stat()
        if code == EEXIST, stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return }
        throw errnoError("mkdir", path, code: code == EEXIST ? ENOTDIR : code)
    }

    /// The names of the entries of a directory (without `.` and `..`).
    static func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw errnoError("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: pointer.pointee)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
