import CJemalloc

/// The memory allocator serving this process.
///
/// `bifrost-map` links jemalloc (the `CJemalloc` target), which replaces `malloc` and `free` for the whole
/// process. Whether it really does depends on the link order, so ``describe()`` checks it at run time rather than
/// trusting the build: it allocates through Swift (which calls `malloc`) and asks jemalloc how many bytes this
/// thread has allocated through it.
enum Allocator {
    /// `"jemalloc <version>"` when jemalloc serves `malloc`, else `"system malloc"`.
    static func describe() -> String {
        guard let before = threadAllocated() else { return "system malloc" }
        let probe = [UInt8](repeating: 1, count: 1 << 20)
        let after = threadAllocated()
        let served = withExtendedLifetime(probe) { (after ?? before) - before >= UInt64(probe.count) }
        guard served, let version = version() else { return "system malloc" }
        return "jemalloc \(version.prefix { $0 != "-" })"
    }

    /// jemalloc's `thread.allocated`: the bytes this thread has allocated through jemalloc.
    private static func threadAllocated() -> UInt64? {
        var value: UInt64 = 0
        var size = MemoryLayout<UInt64>.size
        guard mallctl("thread.allocated", &value, &size, nil, 0) == 0 else { return nil }
        return value
    }

    private static func version() -> String? {
        var text: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &text, &size, nil, 0) == 0, let text else { return nil }
        return String(cString: text)
    }
}
