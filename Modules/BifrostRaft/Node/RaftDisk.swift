import BifrostRaftCore
import BifrostStorage
import BifrostWire

/// The durable state of one Raft group: its log and hard state in a ``RaftLogStore`` and its snapshots (LZ4 files)
/// in a ``SnapshotStore``. All methods block on the disk. The node calls them on its disk thread, one at a time,
/// except ``saveSnapshot(_:payload:)``, which runs on a worker thread so that log writes never wait behind a
/// snapshot file; it touches only the snapshot store, which allows concurrent writers.
///
/// The core reads the log through a ``RaftLogMirror``, which keeps terms and the newest entries in memory and reads
/// older entries and snapshot chunks back from here; this type writes everything the mirror lists before the
/// mirror changes, deletes entries only after the mirror stopped listing them, and builds the mirror on start.
final class RaftDisk: Sendable {
    let group: UInt64
    let log: RaftLogStore
    let snapshots: SnapshotStore
    let sync: Bool

    init(group: UInt64, database: RaftLogDatabase, snapshots: SnapshotStore, sync: Bool) throws {
        self.group = group
        self.log = try database.store(forGroup: group)
        self.snapshots = snapshots
        self.sync = sync
    }

    /// What ``load()`` found.
    struct Loaded {
        /// The mirror for the core: latest snapshot (its file as the image), entries after it, hard state.
        var storage: RaftLogMirror
        /// The decompressed state-machine image of the latest snapshot, if there is one.
        var snapshotPayload: [UInt8]?
        /// `true` when the group has never stored anything (neither bootstrapped nor joined).
        var isNew: Bool
    }

    /// One ready batch's durable part.
    struct Write: Sendable {
        var snapshot: Snapshot?
        var entries: [Entry]
        var hardState: BifrostRaftCore.HardState?
    }

    // MARK: Start

    /// Builds the mirror from disk, repairing the one state a crash can leave half-done: a snapshot file saved (or
    /// received) but the log not yet compacted (or reset) to it. Every entry is read once (for its term); the mirror
    /// keeps the newest `cacheBytes` of them.
    func load(cacheBytes: Int) throws -> Loaded {
        var state = log.state
        var storage: RaftLogMirror
        var payload: [UInt8]?
        if let raw = try snapshots.openLatestRaw(groupID: group) {
            guard let configuration = Configuration.decode(raw.metadata.configuration) else {
                throw StorageError(
                    code: .corruption, message: "group \(group): snapshot \(raw.metadata.index) has a bad configuration"
                )
            }
            let metadata = BifrostRaftCore.SnapshotMetadata(
                index: raw.metadata.index, term: raw.metadata.term, configuration: configuration)
            payload = try readPayload()
            if metadata.index > state.snapshotIndex {
                if metadata.index <= state.lastIndex, (try? log.term(at: metadata.index)) == metadata.term {
                    try log.compactPrefix(through: metadata.index, term: metadata.term, sync: true)
                } else {
                    try log.resetToSnapshot(
                        index: metadata.index, term: metadata.term, configuration: configuration.encoded(), sync: true)
                }
                state = log.state
            }
            storage = RaftLogMirror(
                store: log, metadata: metadata, snapshotFile: raw, cacheBytes: cacheBytes)
        } else {
            guard state.snapshotIndex == 0 else {
                throw StorageError(
                    code: .corruption,
                    message:
                        "group \(group): the log is compacted through \(state.snapshotIndex) but there is no snapshot")
            }
            let configuration = state.configuration.flatMap(Configuration.decode) ?? Configuration()
            storage = RaftLogMirror(
                store: log, metadata: BifrostRaftCore.SnapshotMetadata(index: 0, term: 0, configuration: configuration),
                snapshotFile: nil, cacheBytes: cacheBytes)
        }
        var next = storage.lastIndex + 1
        while next <= state.lastIndex {
            // In pieces, so that a long log is never in memory at once.
            let stored = try log.entries(in: next..<(state.lastIndex + 1), maxBytes: 8 << 20)
            var entries: [Entry] = []
            entries.reserveCapacity(stored.count)
            for entry in stored { entries.append(try Self.decode(entry, group: group)) }
            storage.append(entries)
            next += UInt64(stored.count)
        }
        let hard = state.hardState
        storage.hardState = BifrostRaftCore.HardState(
            term: hard.term, vote: hard.vote ?? noNode, commit: max(hard.commit, storage.snapshotMetadata.index))
        let isNew =
            payload == nil && state.lastIndex == 0 && hard == BifrostStorage.HardState.initial
            && state.configuration == nil
        return Loaded(storage: storage, snapshotPayload: payload, isNew: isNew)
    }

    /// Writes the first state of a new cluster, identically on every bootstrap member: the configuration (all
    /// `peers` voting) and entries 1...n in term 1 that record each peer's address, committed. Every member must
    /// be given the same peer list.
    func bootstrap(peers: [RaftPeer]) throws {
        let sorted = peers.sorted { $0.id < $1.id }
        let configuration = Configuration(voters: Set(sorted.map(\.id)))
        var entries: [LogEntry] = []
        for (offset, peer) in sorted.enumerated() {
            let payload = RaftLogCommand(time: 0, body: .setAddress(peer)).encodedBytes
            entries.append(Self.encode(Entry(index: UInt64(offset + 1), term: 1, kind: .normal, payload: payload)))
        }
        try log.save(
            hardState: BifrostStorage.HardState(term: 1, vote: nil, commit: UInt64(entries.count)),
            configuration: configuration.encoded(), entries: entries, sync: true)
    }

    // MARK: Ready batches

    /// Persists several ready batches, in order, with as few synced writes as possible: consecutive entries and
    /// hard states merge into one RocksDB batch; a snapshot from the leader is installed where it falls.
    ///
    /// - Returns: the last snapshot installed, if any.
    func persist(_ writes: [Write]) throws -> Installed? {
        var entries: [Entry] = []
        var hardState: BifrostRaftCore.HardState?
        var installed: Installed?
        func flush() throws {
            guard !entries.isEmpty || hardState != nil else { return }
            try log.save(
                hardState: hardState.map(Self.convert), configuration: nil, entries: entries.map(Self.encode),
                sync: sync)
            entries.removeAll()
            hardState = nil
        }
        for write in writes {
            if let snapshot = write.snapshot {
                try flush()
                installed = try install(snapshot)
            }
            if let first = write.entries.first {
                if let keep = entries.firstIndex(where: { $0.index >= first.index }) {
                    entries.removeSubrange(keep...)
                }
                entries.append(contentsOf: write.entries)
            }
            if let state = write.hardState { hardState = state }
        }
        try flush()
        return installed
    }

    /// A snapshot from the leader, installed: its file (for the mirror) and its decompressed payload.
    struct Installed: Sendable {
        var file: RawSnapshotFile
        var payload: [UInt8]
    }

    /// Installs a snapshot received from the leader: its image is the raw snapshot file, validated end to end
    /// before it becomes the latest; then the log is reset to it.
    private func install(_ snapshot: Snapshot) throws -> Installed {
        let receiver = try snapshots.beginReceiving(groupID: group)
        do {
            try receiver.receive(rawChunk: snapshot.data, at: 0)
            let metadata = try receiver.finish()
            guard metadata.index == snapshot.metadata.index, metadata.term == snapshot.metadata.term else {
                throw StorageError(
                    code: .corruption,
                    message:
                        "group \(group): received snapshot file \(metadata.index)/\(metadata.term) does not match "
                        + "\(snapshot.metadata.index)/\(snapshot.metadata.term)")
            }
        } catch {
            receiver.abort()
            throw error
        }
        let payload = try readPayload() ?? []
        guard let raw = try snapshots.openLatestRaw(groupID: group) else {
            throw StorageError(code: .internal, message: "group \(group): the snapshot just installed is missing")
        }
        try log.resetToSnapshot(
            index: snapshot.metadata.index, term: snapshot.metadata.term,
            configuration: snapshot.metadata.configuration.encoded(), sync: true)
        return Installed(file: raw, payload: payload)
    }

    // MARK: Local snapshots

    /// Saves a snapshot of the state machines at `metadata.index` and returns its file (the image the core ships to
    /// lagging followers). The log is not compacted yet: the node calls ``compact(through:term:)`` once the mirror
    /// no longer lists the entries. Returns `nil` when a newer snapshot (one installed from the leader meanwhile)
    /// already exists.
    func saveSnapshot(_ metadata: BifrostRaftCore.SnapshotMetadata, payload: [UInt8]) throws -> RawSnapshotFile? {
        if let latest = try snapshots.snapshotIndexes(groupID: group).last, latest >= metadata.index { return nil }
        let stored = BifrostStorage.SnapshotMetadata(
            groupID: group, index: metadata.index, term: metadata.term,
            configuration: metadata.configuration.encoded())
        try snapshots.save(stored, payload: payload)
        guard let raw = try snapshots.openLatestRaw(groupID: group) else {
            throw StorageError(code: .internal, message: "group \(group): the snapshot just saved is missing")
        }
        // A snapshot from the leader installed meanwhile (on the disk thread) is newer: this one is then not the
        // image to ship.
        guard raw.metadata.index == metadata.index else { return nil }
        return raw
    }

    /// Deletes the log entries through `index` (covered by a snapshot). Nothing happens when the log is already
    /// compacted further (a snapshot from the leader was installed meanwhile).
    func compact(through index: UInt64, term: UInt64) throws {
        try log.compactPrefix(through: index, term: term, sync: sync)
    }

    private func readPayload() throws -> [UInt8]? {
        guard let reader = try snapshots.openLatest(groupID: group) else { return nil }
        var payload: [UInt8] = []
        payload.reserveCapacity(Int(min(reader.payloadLength, 1 << 30)))
        while let chunk = try reader.readChunk(maxBytes: 1 << 20) { payload.append(contentsOf: chunk) }
        return payload
    }

    // MARK: Encoding

    /// A stored entry's payload is the entry kind (one byte) followed by the core payload.
    static func encode(_ entry: Entry) -> LogEntry {
        var payload: [UInt8] = []
        payload.reserveCapacity(entry.payload.count + 1)
        payload.append(entry.kind.rawValue)
        payload.append(contentsOf: entry.payload)
        return LogEntry(index: entry.index, term: entry.term, payload: payload)
    }

    static func decode(_ entry: LogEntry, group: UInt64) throws -> Entry {
        guard let kindByte = entry.payload.first, let kind = EntryKind(rawValue: kindByte) else {
            throw StorageError(
                code: .corruption, message: "group \(group): entry \(entry.index) has no valid kind byte")
        }
        return Entry(index: entry.index, term: entry.term, kind: kind, payload: Array(entry.payload.dropFirst()))
    }

    static func convert(_ state: BifrostRaftCore.HardState) -> BifrostStorage.HardState {
        BifrostStorage.HardState(term: state.term, vote: state.vote == noNode ? nil : state.vote, commit: state.commit)
    }
}
