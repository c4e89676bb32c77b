/// An ordered set of strings kept as a list of sorted chunks: finding a position costs two binary searches
/// (O(log n)), an insert or a removal moves at most one chunk's elements, and walking in order from a position
/// costs O(1) per key.
///
/// Order is `String`'s `<` (Unicode canonical order: the scalar order of the NFC form, so byte order for NFC UTF-8).
/// Every chunk is non-empty, holds at most ``maxChunk`` keys, and every key of a chunk precedes every key of the next.
struct SortedKeys: Sendable {
    /// The largest chunk; a full chunk splits in two halves.
    static let maxChunk = 1_024
    /// A chunk this small after a removal merges with a neighbour when both fit in one chunk.
    static let minChunk = 256

    private(set) var chunks: [[String]] = []
    private(set) var count = 0

    /// An empty set.
    init() {}

    /// A set of `sorted`, which must be strictly increasing (not checked).
    init(sorted: [String]) {
        count = sorted.count
        chunks.reserveCapacity((sorted.count + Self.maxChunk / 2 - 1) / (Self.maxChunk / 2))
        var start = 0
        while start < sorted.count {
            let end = min(start + Self.maxChunk / 2 * 3 / 2, sorted.count)
            chunks.append(Array(sorted[start..<end]))
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
    private func chunkIndex(for key: String) -> Int {
        var low = 0
        var high = chunks.count
        while low < high {
            let middle = (low + high) / 2
            // A chunk is never empty.
            if chunks[middle][chunks[middle].count - 1] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The first offset in `chunk` whose key is `>= key` (or `> key` when `strictly`).
    private static func offset(in chunk: [String], of key: String, strictly: Bool) -> Int {
        var low = 0
        var high = chunk.count
        while low < high {
            let middle = (low + high) / 2
            let before = strictly ? !(key < chunk[middle]) : chunk[middle] < key
            if before { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The position of the first key `>= key` (`> key` when `strictly`), or the end.
    func position(of key: String, strictly: Bool = false) -> Position {
        var chunk = chunkIndex(for: key)
        guard chunk < chunks.count else { return endPosition }
        let offset = Self.offset(in: chunks[chunk], of: key, strictly: strictly)
        if offset < chunks[chunk].count { return Position(chunk: chunk, offset: offset) }
        chunk += 1  // only when strictly and key is the chunk's last
        return Position(chunk: chunk, offset: 0)
    }

    /// The key at `position`, which must not be the end.
    subscript(position: Position) -> String { chunks[position.chunk][position.offset] }

    /// The position after `position`.
    func position(after position: Position) -> Position {
        if position.offset + 1 < chunks[position.chunk].count {
            return Position(chunk: position.chunk, offset: position.offset + 1)
        }
        return Position(chunk: position.chunk + 1, offset: 0)
    }

    /// Inserts `key`, which must be absent (not checked beyond a debug assertion).
    mutating func insert(_ key: String) {
        count += 1
        guard !chunks.isEmpty else {
            chunks.append([key])
            return
        }
        let chunk = min(chunkIndex(for: key), chunks.count - 1)
        let offset = Self.offset(in: chunks[chunk], of: key, strictly: false)
        assert(offset == chunks[chunk].count || chunks[chunk][offset] != key, "duplicate key")
        chunks[chunk].insert(key, at: offset)
        if chunks[chunk].count > Self.maxChunk {
            let upper = Array(chunks[chunk][(Self.maxChunk / 2)...])
            chunks[chunk].removeSubrange((Self.maxChunk / 2)...)
            chunks.insert(upper, at: chunk + 1)
        }
    }

    /// Removes `key`; returns whether it was present.
    @discardableResult
    mutating func remove(_ key: String) -> Bool {
        let chunk = chunkIndex(for: key)
        guard chunk < chunks.count else { return false }
        let offset = Self.offset(in: chunks[chunk], of: key, strictly: false)
        guard offset < chunks[chunk].count, chunks[chunk][offset] == key else { return false }
        count -= 1
        chunks[chunk].remove(at: offset)
        if chunks[chunk].isEmpty {
            chunks.remove(at: chunk)
        } else if chunks[chunk].count < Self.minChunk {
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
            }
        }
        return true
    }

    /// Removes every key.
    mutating func removeAll() {
        chunks.removeAll()
        count = 0
    }

    /// Every key, in order.
    var all: FlattenSequence<[[String]]> { chunks.joined() }
}
