import BifrostWire

/// One client session of the replicated session table (Raft thesis §6.3): when the client was last seen, the
/// watermark below which results are gone, and the cached results of the commands above it.
struct ClientSession: Sendable, Hashable {
    /// The cluster time of the session's latest command (or of its opening).
    var lastSeen: UInt64
    /// Every sequence number up to this one has no cached result any more: the client acknowledged it, or the
    /// cache bound evicted it. A command numbered at or below it gets `responseDiscarded` and is never applied.
    var watermark: UInt64 = 0
    /// The cached replies, by sequence number (all above ``watermark``).
    var results = SequenceCache()

    /// Raises the watermark to `acknowledged` (it never goes down) and drops the results at or below it.
    mutating func acknowledge(through acknowledged: UInt64) {
        guard acknowledged > watermark else { return }
        watermark = acknowledged
        results.removeAll(through: acknowledged)
    }

    /// Caches `reply` for `sequence`, then evicts the lowest sequence numbers (raising the watermark to each)
    /// while more than `bound` results are cached.
    mutating func cache(_ reply: RaftReply, for sequence: UInt64, bound: Int) {
        results.insert(reply, for: sequence)
        while results.count > max(bound, 0), let lowest = results.lowestSequence {
            watermark = max(watermark, lowest)
            results.removeAll(through: lowest)
        }
    }
}

/// Cached replies sorted by sequence number. Clients number commands in increasing order, so an insertion is
/// almost always an append and a removal (acknowledgement or eviction) always removes a prefix; both are amortized
/// O(1), lookups O(log n).
struct SequenceCache: Sendable, Hashable, Sequence {
    private var entries: [(sequence: UInt64, reply: RaftReply)] = []
    /// Entries before this index are dead (removed prefix, compacted lazily).
    private var head = 0

    /// The number of cached replies.
    var count: Int { entries.count - head }

    /// The lowest cached sequence number.
    var lowestSequence: UInt64? { head < entries.count ? entries[head].sequence : nil }

    /// The cached reply of `sequence`.
    func reply(for sequence: UInt64) -> RaftReply? {
        let position = insertionPoint(of: sequence)
        guard position < entries.count, entries[position].sequence == sequence else { return nil }
        return entries[position].reply
    }

    /// Caches (or replaces) the reply of `sequence`.
    mutating func insert(_ reply: RaftReply, for sequence: UInt64) {
        if let last = entries.last, head < entries.count, last.sequence >= sequence {
            let position = insertionPoint(of: sequence)
            if position < entries.count, entries[position].sequence == sequence {
                entries[position].reply = reply
            } else {
                entries.insert((sequence, reply), at: position)
            }
        } else {
            entries.append((sequence, reply))
        }
    }

    /// Drops every reply numbered at or below `sequence`.
    mutating func removeAll(through sequence: UInt64) {
        head = sequence == .max ? entries.count : insertionPoint(of: sequence + 1)
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 32 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// The first live position whose sequence number is at least `sequence`, or past the end.
    private func insertionPoint(of sequence: UInt64) -> Int {
        var low = head
        var high = entries.count
        while low < high {
            let middle = low + (high - low) / 2
            if entries[middle].sequence < sequence { low = middle + 1 } else { high = middle }
        }
        return low
    }

    func makeIterator() -> some IteratorProtocol<(sequence: UInt64, reply: RaftReply)> {
        entries[head...].makeIterator()
    }

    static func == (lhs: SequenceCache, rhs: SequenceCache) -> Bool {
        lhs.elementsEqual(rhs) { $0.sequence == $1.sequence && $0.reply == $1.reply }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for entry in self {
            hasher.combine(entry.sequence)
            hasher.combine(entry.reply)
        }
    }
}

/// The replicated session table: the sessions by id, plus an index ordered by last-seen time so that expiry
/// costs O(expired) rather than a scan of every session.
///
/// Cluster time never goes backwards along the log and a touch sets `lastSeen` to the current cluster time, so
/// touches append to the index in order; an index entry whose time no longer matches its session's `lastSeen` is
/// stale and skipped when it reaches the front. The index is derived state: it is rebuilt from the sessions on
/// restore and never written into a snapshot.
struct SessionTable: Sendable {
    /// The sessions, by id (the log index of the entry that opened them).
    private(set) var sessions: [UInt64: ClientSession] = [:]
    /// (lastSeen, id) pairs in non-decreasing `lastSeen` order; entries before `expiryHead` are consumed.
    private var expiryIndex: [(lastSeen: UInt64, id: UInt64)] = []
    private var expiryHead = 0

    /// The number of live sessions.
    var count: Int { sessions.count }

    /// Builds a table from restored sessions.
    init(sessions: [UInt64: ClientSession] = [:]) {
        self.sessions = sessions
        rebuildIndex()
    }

    /// Whether the session exists.
    func contains(_ id: UInt64) -> Bool { sessions[id] != nil }

    /// Opens a session at cluster time `time` (touches it if it exists already).
    mutating func open(_ id: UInt64, time: UInt64) {
        if sessions[id] == nil {
            sessions[id] = ClientSession(lastSeen: time)
            appendToIndex(time, id)
        } else {
            touch(id, time: time)
        }
    }

    /// Removes a session; returns whether it existed.
    mutating func close(_ id: UInt64) -> Bool {
        sessions.removeValue(forKey: id) != nil
    }

    /// Records that the session was seen at cluster time `time` (which never decreases).
    mutating func touch(_ id: UInt64, time: UInt64) {
        guard let position = position(of: id) else { return }
        touch(at: position, time: time) { _ in }
    }

    /// A session's place in the table, valid until a session is opened, closed or expires: the apply path looks a
    /// session up once and reaches it through its position for the rest of a command (every node runs it for
    /// every write).
    typealias Position = Dictionary<UInt64, ClientSession>.Index

    /// The position of session `id`, or nil when it does not exist.
    func position(of id: UInt64) -> Position? { sessions.index(forKey: id) }

    /// ``touch(_:time:)`` for the session at `position`, then `body` on it in place.
    mutating func touch<R>(at position: Position, time: UInt64, _ body: (inout ClientSession) -> R) -> R {
        if sessions.values[position].lastSeen != time {
            sessions.values[position].lastSeen = time
            appendToIndex(time, sessions.keys[position])
        }
        return body(&sessions.values[position])
    }

    /// Mutates the session at `position` in place.
    mutating func update<R>(at position: Position, _ body: (inout ClientSession) -> R) -> R {
        body(&sessions.values[position])
    }

    /// Removes every session whose `lastSeen + timeout < now` (saturating: a session never expires through
    /// overflow). Deterministic: it depends only on replicated values.
    /// Removes the sessions idle for longer than `timeout` at `now`, and returns their ids.
    @discardableResult
    mutating func expire(now: UInt64, timeout: UInt64) -> [UInt64] {
        var expired: [UInt64] = []
        while expiryHead < expiryIndex.count {
            let (lastSeen, id) = expiryIndex[expiryHead]
            let (deadline, overflow) = lastSeen.addingReportingOverflow(timeout)
            guard !overflow, deadline < now else { break }
            expiryHead += 1
            if sessions[id]?.lastSeen == lastSeen {
                sessions.removeValue(forKey: id)
                expired.append(id)
            }
        }
        compactIndexIfNeeded()
        return expired
    }

    private mutating func appendToIndex(_ lastSeen: UInt64, _ id: UInt64) {
        expiryIndex.append((lastSeen, id))
        compactIndexIfNeeded()
    }

    /// Keeps the index within a constant factor of the live sessions (stale entries accumulate from touches).
    private mutating func compactIndexIfNeeded() {
        if expiryHead == expiryIndex.count {
            expiryIndex.removeAll(keepingCapacity: true)
            expiryHead = 0
        } else if expiryIndex.count > 1024 && expiryIndex.count > 4 * sessions.count {
            rebuildIndex()
        }
    }

    private mutating func rebuildIndex() {
        expiryIndex = sessions.map { (lastSeen: $0.value.lastSeen, id: $0.key) }
        expiryIndex.sort { ($0.lastSeen, $0.id) < ($1.lastSeen, $1.id) }
        expiryHead = 0
    }
}
