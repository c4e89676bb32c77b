/// An ordered set of strings kept as a list of sorted chunks: finding a position costs two binary searches
/// (O(log n)), an insert or a removal moves at most one chunk's elements, and walking in order from a position
/// costs O(1) per key. The first search runs over a contiguous copy of each chunk's last key (``lasts``), so it
/// touches no chunk's storage.
///
/// The elements are keys (`String`, in `String`'s order) or map records (in the order of their keys' NFC bytes,
/// which is `String`'s order for keys spelled in NFC). Every chunk is non-empty, holds at most ``maxChunk`` keys,
/// and every key of a chunk precedes every key of the next.
struct SortedKeys<Key: KeyOrdered>: Sendable {
    /// The largest chunk. An insert into a full chunk splits it in two halves first, except past the end of the last
    /// chunk, where it starts a new one (keys inserted in increasing order fill their chunks). An insert moves the
    /// rest of its chunk (24-byte elements for the map): 256 keys keep that move to a few KiB, where 1,024 made it
    /// most of an insert's cost (`docs/benchmarks.md`, session 16).
    static var maxChunk: Int { 256 }
    /// A chunk this small after a removal merges with a neighbour when both fit in one chunk.
    static var minChunk: Int { 64 }

    private(set) var chunks: [[Key]] = []
    /// The last key of each chunk, in chunk order (`lasts[i] == chunks[i].last`, always).
    private(set) var lasts: [Key] = []
    private(set) var count = 0

    /// An empty set.
    init() {}

    /// A set of `sorted`, which must be strictly increasing (not checked).
    init(sorted: [Key]) {
        count = sorted.count
        chunks.reserveCapacity((sorted.count + Self.maxChunk / 2 - 1) / (Self.maxChunk / 2))
        var start = 0
        while start < sorted.count {
            let end = min(start + Self.maxChunk / 2 * 3 / 2, sorted.count)
            chunks.append(Array(sorted[start..<end]))
            lasts.append(sorted[end - 1])
            start = end
        }
    }

    /// A position: a chunk and an offset in it. `(chunks.count, 0)` is the end.
    struct Position: Hashable, Sendable {
        var chunk: Int
        var offset: Int
    }

    var endPosition: Position { Position(chunk: chunks.count, offset: 0) }

    /// The chunk that holds `key` or where it belongs: the first chunk whose last key is `>= key`, or the last chunk
    /// when `key` is past every key.
    private func chunkIndex(for key: Key) -> Int {
        var low = 0
        var high = lasts.count
        while low < high {
            let middle = (low + high) / 2
            if lasts[middle].precedes(key) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Restores `lasts[chunk]` after chunk `chunk` changed (it is never empty).
    private mutating func refreshLast(_ chunk: Int) {
        lasts[chunk] = chunks[chunk][chunks[chunk].count - 1]
    }

    /// The first offset in `chunk` whose key is `>= key` (or `> key` when `strictly`).
    private static func offset(in chunk: [Key], of key: Key, strictly: Bool) -> Int {
        var low = 0
        var high = chunk.count
        while low < high {
            let middle = (low + high) / 2
            let before = strictly ? !key.precedes(chunk[middle]) : chunk[middle].precedes(key)
            if before { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The position of the first key `>= key` (`> key` when `strictly`), or the end.
    func position(of key: Key, strictly: Bool = false) -> Position {
        var chunk = chunkIndex(for: key)
        guard chunk < chunks.count else { return endPosition }
        let offset = Self.offset(in: chunks[chunk], of: key, strictly: strictly)
        if offset < chunks[chunk].count { return Position(chunk: chunk, offset: offset) }
        chunk += 1  // only when strictly and key is the chunk's last
        return Position(chunk: chunk, offset: 0)
    }

    /// The key at `position`, which must not be the end.
    subscript(position: Position) -> Key { chunks[position.chunk][position.offset] }

    /// The position after `position`.
    func position(after position: Position) -> Position {
        if position.offset + 1 < chunks[position.chunk].count {
            return Position(chunk: position.chunk, offset: position.offset + 1)
        }
        return Position(chunk: position.chunk + 1, offset: 0)
    }

    /// Inserts `key`, which must be absent (not checked beyond a debug assertion).
    mutating func insert(_ key: Key) {
        count += 1
        guard !chunks.isEmpty else {
            chunks.append([key])
            lasts.append(key)
            return
        }
        var chunk = min(chunkIndex(for: key), chunks.count - 1)
        var offset = Self.offset(in: chunks[chunk], of: key, strictly: false)
        assert(offset == chunks[chunk].count || !chunks[chunk][offset].hasSameKey(as: key), "duplicate key")
        if chunks[chunk].count >= Self.maxChunk {
            if chunk == chunks.count - 1, offset == chunks[chunk].count {
                // Keys arriving in increasing order (a preload, sequential names): a new last chunk, and the full
                // one stays full instead of two half-full ones.
                chunks.append([key])
                lasts.append(key)
                return
            }
            // Split before inserting, into two chunks of their exact size: a full chunk grown by one more key would
            // double its storage, and its lower half would keep all of it.
            let half = chunks[chunk].count / 2
            let upper = Array(chunks[chunk][half...])
            chunks[chunk] = Array(chunks[chunk][..<half])
            chunks.insert(upper, at: chunk + 1)
            lasts.insert(upper[upper.count - 1], at: chunk + 1)
            refreshLast(chunk)
            if offset > half {
                chunk += 1
                offset -= half
            }
        }
        chunks[chunk].insert(key, at: offset)
        if offset == chunks[chunk].count - 1 { refreshLast(chunk) }
    }

    /// Puts `key` in the place of the element with the same key (a record with a new value); returns whether there
    /// was one.
    @discardableResult
    mutating func replace(_ key: Key) -> Bool {
        guard let (chunk, offset) = find(key) else { return false }
        chunks[chunk][offset] = key
        if offset == chunks[chunk].count - 1 { lasts[chunk] = key }
        return true
    }

    /// The chunk and offset of the element with the same key as `key`.
    private func find(_ key: Key) -> (chunk: Int, offset: Int)? {
        let chunk = chunkIndex(for: key)
        guard chunk < chunks.count else { return nil }
        let offset = Self.offset(in: chunks[chunk], of: key, strictly: false)
        guard offset < chunks[chunk].count, chunks[chunk][offset].hasSameKey(as: key) else { return nil }
        return (chunk, offset)
    }

    /// Removes the element with the same key as `key`; returns whether there was one.
    @discardableResult
    mutating func remove(_ key: Key) -> Bool {
        guard let (chunk, offset) = find(key) else { return false }
        count -= 1
        chunks[chunk].remove(at: offset)
        if chunks[chunk].isEmpty {
            chunks.remove(at: chunk)
            lasts.remove(at: chunk)
            return true
        }
        refreshLast(chunk)
        if chunks[chunk].count < Self.minChunk {
            // Merge with the smaller neighbour when the two fit in one chunk.
            let neighbour =
                chunk + 1 < chunks.count && (chunk == 0 || chunks[chunk + 1].count < chunks[chunk - 1].count)
                ? chunk + 1 : chunk - 1
            if neighbour >= 0, neighbour < chunks.count,
                chunks[chunk].count + chunks[neighbour].count <= Self.maxChunk
            {
                let (first, second) = neighbour < chunk ? (neighbour, chunk) : (chunk, neighbour)
                let moved = chunks[second]
                chunks[first].append(contentsOf: moved)
                chunks.remove(at: second)
                lasts.remove(at: first)
            }
        }
        return true
    }

    /// Removes every key.
    mutating func removeAll() {
        chunks.removeAll()
        lasts.removeAll()
        count = 0
    }

    /// Every key, in order.
    var all: FlattenSequence<[[Key]]> { chunks.joined() }
}

/// An element of ``SortedKeys``: a key, or something that carries one.
protocol KeyOrdered: Sendable {
    /// Whether this key comes before `other`'s.
    func precedes(_ other: Self) -> Bool
    /// Whether this key is `other`'s.
    func hasSameKey(as other: Self) -> Bool
}

extension String: KeyOrdered {
    func precedes(_ other: String) -> Bool { self < other }
    func hasSameKey(as other: String) -> Bool { self == other }
}
