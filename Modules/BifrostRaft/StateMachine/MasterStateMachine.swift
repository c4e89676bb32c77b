import BifrostBindings
import BifrostRaftCore
import BifrostWire

/// The knobs of a ``MasterStateMachine``. Every node of a group must use the same settings: they decide which
/// sessions expire and which cached results are evicted, and those decisions are part of the replicated state.
public struct MasterStateMachineSettings: Sendable, Hashable {
    /// A session that has sent no command for this long, measured in cluster time (the times the leader stamps
    /// on log entries), expires: it is removed at the first entry whose time exceeds its last-seen time by more
    /// than this. Default: 60,000 ms.
    public var sessionTimeoutMillis: UInt64 = 60_000
    /// The most results a session keeps cached for retries. When a new result would exceed it, the lowest
    /// sequence number is evicted, and a retry of it gets ``RaftClientError/Code/responseDiscarded`` (never a
    /// second apply). Default: 4,096.
    public var maxCachedResultsPerSession: Int = 4_096

    /// Creates settings with the documented defaults.
    public init() {}
}

/// The root state machine of a Raft group: it decodes every committed normal entry's ``RaftLogCommand``, keeps
/// the replicated client session table, the cluster time and the address book, and dispatches user commands to
/// the registered ``RaftStateMachine``s with exactly-once semantics (Raft thesis §6.3, as in LogCabin).
///
/// A pure value: no I/O, no clock, no randomness. Every node that applies the same entries in the same order,
/// from the same snapshot, with the same settings and registrations, reaches the same state and returns the same
/// replies.
///
/// Exactly-once: a command of session `s` with sequence number `n` is applied at most once; a later entry with
/// the same `(s, n)` (a client retry, e.g. after a leader change) gets the first reply unchanged, including the
/// first entry's index, until the client acknowledges `n` or the cache bound evicts it.
public struct MasterStateMachine: Sendable {
    /// The settings this master was created with.
    public let settings: MasterStateMachineSettings

    private var machines: [UInt64: any RaftStateMachine] = [:]
    /// The instances as they were registered: what a machine absent from a snapshot image is reset to.
    private var initialMachines: [UInt64: any RaftStateMachine] = [:]
    private var sessions = SessionTable()
    /// Collects the events of one user command at a time (see ``apply(_:isLeader:)``).
    private var sink = RaftEventSink()

    /// The replicated address book: each member's RPC address, by node id (set by `.setAddress` commands and
    /// ``seedAddresses(_:)``).
    public private(set) var addressBook: [NodeID: String] = [:]

    /// The cluster time: the largest ``RaftLogCommand/time`` applied so far (milliseconds since the Unix epoch).
    public private(set) var clusterTime: UInt64 = 0
    /// The replicated subscriptions, by id (the index of the entry that registered each).
    public private(set) var subscriptions: [UInt64: RaftSubscribeRequest] = [:]
    /// The events the last applied entry raised, in order (empty when it raised none, failed, or was a retry
    /// answered from the session table); for a batch entry, those of all its commands, ordinals counted across the
    /// entry.
    public private(set) var lastEvents: [RaftRaisedEventRecord] = []
    /// Subscriptions removed by the last applied entry (unsubscribed, or their session closed or expired).
    public private(set) var lastRemovedSubscriptions: [UInt64] = []

    /// The version byte that starts every snapshot image.
    static let imageVersion: UInt8 = 2

    /// Creates an empty master: no state machines, no sessions, cluster time 0.
    public init(settings: MasterStateMachineSettings = .init()) {
        self.settings = settings
    }

    // MARK: - Registration

    /// Registers `machine` under `id`. The instance is also kept as the machine's initial state, which a
    /// ``restore(from:)`` from an image that lacks the id resets it to.
    ///
    /// - Throws: ``RaftStateMachineError/Code/rejected`` if `id` is 0 (reserved) or already registered.
    public mutating func register(_ machine: some RaftStateMachine, id: UInt64) throws(RaftStateMachineError) {
        guard id != 0 else {
            throw RaftStateMachineError(code: .rejected, message: "state machine id 0 is reserved")
        }
        guard machines[id] == nil else {
            throw RaftStateMachineError(code: .rejected, message: "state machine \(id) is already registered")
        }
        machines[id] = machine
        initialMachines[id] = machine
    }

    /// Whether a state machine is registered under `id`.
    public func isRegistered(_ id: UInt64) -> Bool { machines[id] != nil }

    /// The ids of the registered state machines, in increasing order.
    public var registeredIDs: [UInt64] { machines.keys.sorted() }

    /// The result already applied for `(session, sequence)`, if the session table still holds it. A leader answers
    /// a retried command from here without a new log entry: the cached result is committed and applied.
    public func cachedResult(session: UInt64, sequence: UInt64) -> RaftReply? {
        guard session != 0 else { return nil }
        return sessions.sessions[session]?.results.reply(for: sequence)
    }

    /// The number of live client sessions.
    public var sessionCount: Int { sessions.count }

    /// Adds `peers` to the address book without a log entry. Bootstrap only: every bootstrap node must seed the
    /// same list, so that the replicated state stays identical. Peers with id ``noNode`` are ignored.
    public mutating func seedAddresses(_ peers: [RaftPeer]) {
        for peer in peers where peer.id != noNode {
            addressBook[peer.id] = peer.address
        }
    }

    // MARK: - Applying entries

    /// Applies the payload of one committed *normal* entry (an encoded ``RaftLogCommand``) and returns the reply
    /// for the client waiting on that entry; for a ``RaftLogCommand/Body/batch(_:)`` entry, the reply to its last
    /// command (``apply(_:isLeader:into:)`` gives every command's).
    ///
    /// A payload that does not decode (or an entry that is not `.normal`) gets ``RaftClientError/Code/invalidRequest``
    /// and changes nothing. Otherwise the cluster time advances to the command's time, sessions idle for longer
    /// than ``MasterStateMachineSettings/sessionTimeoutMillis`` expire, and the command runs:
    /// - `.openSession`: the session id is the entry's index; the reply's value is that id as a varint.
    /// - `.closeSession(id)`: removes the session; an unknown one gets `sessionExpired`.
    /// - `.setAddress(peer)`: records the peer's address (id ``noNode`` gets `invalidRequest`).
    /// - `.user(request)`: see the type's discussion of exactly-once; session 0 applies without deduplication.
    /// - `.batch(requests)`: each request in order, exactly as `.user` would, all at the entry's index.
    ///
    /// Never traps on any bytes.
    public mutating func apply(_ entry: Entry, isLeader: Bool) -> RaftReply {
        var replies: [RaftReply] = []
        apply(entry, isLeader: isLeader, into: &replies)
        return replies.last ?? Self.invalid("entry \(entry.index) holds no command")
    }

    /// Applies one committed *normal* entry as ``apply(_:isLeader:)`` does, appending to `replies` one reply per
    /// command, in the entry's order: one for every kind of command but a batch, which gets one per request. A
    /// payload that does not decode gets a single `invalidRequest` reply. ``lastEvents`` holds the events of every
    /// command of the entry, their ordinals counted across the entry.
    public mutating func apply(_ entry: Entry, isLeader: Bool, into replies: inout [RaftReply]) {
        guard entry.kind == .normal else {
            replies.append(Self.invalid("entry \(entry.index) is a \(entry.kind) entry, not a normal one"))
            return
        }
        let command: RaftLogCommand
        do {
            command = try RaftLogCommand.decode(
                payload: entry.payload, limits: Self.limits(forBytes: entry.payload.count))
        } catch {
            replies.append(Self.invalid("entry \(entry.index) does not hold a valid command: \(error)"))
            return
        }

        lastEvents.removeAll(keepingCapacity: true)
        lastRemovedSubscriptions.removeAll()
        clusterTime = max(clusterTime, command.time)
        let expired = sessions.expire(now: clusterTime, timeout: settings.sessionTimeoutMillis)
        if !expired.isEmpty { dropSubscriptions(ofSessions: Set(expired)) }

        switch command.body {
        case .batch(let requests):
            applyCommands(requests, of: entry, isLeader: isLeader, into: &replies)
        default:
            replies.append(applyOne(command.body, entry: entry, isLeader: isLeader))
        }
    }

    /// Applies one decoded command (after the clock and the sessions' expiry) and returns its reply; a batch answers
    /// with its last command's (``apply(_:isLeader:into:)`` applies batches itself, to keep every reply).
    private mutating func applyOne(_ body: RaftLogCommand.Body, entry: Entry, isLeader: Bool) -> RaftReply {
        switch body {
        case .openSession:
            guard entry.index != 0 else { return Self.invalid("a session cannot be opened at index 0") }
            sessions.open(entry.index, time: clusterTime)
            return .ok(value: Wire.encodeToBytes(entry.index), index: entry.index)
        case .closeSession(let id):
            guard sessions.close(id) else { return Self.sessionExpired(id) }
            dropSubscriptions(ofSessions: [id])
            return .ok(value: [], index: entry.index)
        case .subscribe(let request):
            if request.session != 0 {
                guard sessions.contains(request.session) else { return Self.sessionExpired(request.session) }
                sessions.touch(request.session, time: clusterTime)
            }
            guard machines[request.stateMachine] != nil else { return Self.notFound(request.stateMachine) }
            subscriptions[entry.index] = request
            return .ok(value: Wire.encodeToBytes(entry.index), index: entry.index)
        case .unsubscribe(let id):
            if subscriptions.removeValue(forKey: id) != nil { lastRemovedSubscriptions.append(id) }
            return .ok(value: [], index: entry.index)
        case .setAddress(let peer):
            guard peer.id != noNode else { return Self.invalid("node id 0 is reserved") }
            addressBook[peer.id] = peer.address
            return .ok(value: [], index: entry.index)
        case .user(let request):
            return withApplyContext(of: entry, isLeader: isLeader) { $0.applyCommand(request, context: $1) }
        case .batch(let requests):
            var all: [RaftReply] = []
            applyCommands(requests, of: entry, isLeader: isLeader, into: &all)
            return all.last ?? Self.invalid("entry \(entry.index) holds no command")
        }
    }

    /// Applies the client commands of one batch entry in order, in one shared context, appending a reply each.
    private mutating func applyCommands(
        _ requests: [RaftCommandRequest], of entry: Entry, isLeader: Bool, into replies: inout [RaftReply]
    ) {
        withApplyContext(of: entry, isLeader: isLeader) { master, context in
            for request in requests { replies.append(master.applyCommand(request, context: context)) }
        }
    }

    /// Runs `body` with the apply context of `entry`'s client commands, bound for its duration (`RaftBindings`), so
    /// that code deep inside a state machine can ask whether it runs on the leader without the context being passed
    /// down. The commands of a batch share the context, its binding and its event sink: they differ in nothing the
    /// context holds, and one binding per entry instead of one per command saves a task-local push and pop each.
    private mutating func withApplyContext<Result>(
        of entry: Entry, isLeader: Bool, _ body: (inout MasterStateMachine, RaftApplyContext) -> Result
    ) -> Result {
        // The sink is reused while this master holds its only reference: a context a state machine kept from an
        // earlier entry (or a copy of the master) keeps its own sink, and this entry gets a new one.
        if !isKnownUniquelyReferenced(&sink) { sink = RaftEventSink() }
        sink.events.removeAll(keepingCapacity: true)
        let context = RaftApplyContext(
            index: entry.index, term: entry.term, time: clusterTime, isLeader: isLeader, sink: sink)
        return RaftBindings.applyContext.withValue(context) { body(&self, context) }
    }

    /// Applies one client command of the entry `context` belongs to and records the events it raises after those of
    /// the entry's earlier commands. The events a command raises are its own: they follow those already in the
    /// shared sink, and the sink drops them again when they do not count.
    private mutating func applyCommand(_ request: RaftCommandRequest, context: RaftApplyContext) -> RaftReply {
        let start = sink.events.count
        let reply = applyUser(request, context: context)
        let end = sink.events.count
        guard end > start else { return reply }
        if case .ok(_, let index) = reply, index == context.index {
            // Raised by this very application (a retry answered from the session table carries an older index
            // and raises nothing; one answered within the same entry raised nothing either).
            for position in start..<end {
                lastEvents.append(
                    RaftRaisedEventRecord(
                        stateMachine: request.stateMachine, index: context.index, ordinal: UInt32(lastEvents.count),
                        event: sink.events[position]))
            }
        } else {
            // A failed command's events never happened.
            sink.events.removeSubrange(start..<end)
        }
        return reply
    }

    private mutating func applyUser(_ request: RaftCommandRequest, context: RaftApplyContext) -> RaftReply {
        guard request.session != 0 else { return execute(request, context: context) }
        // One lookup for the whole command: running the command changes no session, so the position stays valid.
        guard let position = sessions.position(of: request.session) else {
            return Self.sessionExpired(request.session)
        }
        // nil: apply the command; a reply: answer without applying.
        let early: RaftReply? = sessions.touch(at: position, time: clusterTime) { session -> RaftReply? in
            session.acknowledge(through: request.acknowledged)
            if request.sequence <= session.watermark {
                return .failure(
                    RaftClientError(
                        code: .responseDiscarded,
                        message: "the result of command \(request.sequence) of session \(request.session) "
                            + "was discarded (results up to \(session.watermark) are gone)"
                    )
                )
            }
            return session.results.reply(for: request.sequence)
        }
        if let early { return early }

        let reply = execute(request, context: context)
        let bound = settings.maxCachedResultsPerSession
        sessions.update(at: position) { $0.cache(reply, for: request.sequence, bound: bound) }
        return reply
    }

    /// Runs a command on its state machine (no session logic).
    private mutating func execute(_ request: RaftCommandRequest, context: RaftApplyContext) -> RaftReply {
        guard machines[request.stateMachine] != nil else { return Self.notFound(request.stateMachine) }
        do throws(RaftStateMachineError) {
            let value =
                try machines[request.stateMachine]?.apply(
                    function: request.function, argument: request.argument, context: context) ?? []
            return .ok(value: value, index: context.index)
        } catch {
            return .failure(Self.clientError(error))
        }
    }

    private mutating func dropSubscriptions(ofSessions ended: Set<UInt64>) {
        for (id, subscription) in subscriptions where ended.contains(subscription.session) {
            subscriptions.removeValue(forKey: id)
            lastRemovedSubscriptions.append(id)
        }
    }

    // MARK: - Queries

    /// Runs a read-only query on state machine `stateMachine`; the `.ok` reply carries `appliedIndex` as its
    /// index. Never changes the state.
    public func query(stateMachine: UInt64, function: UInt64, argument: [UInt8], appliedIndex: UInt64) -> RaftReply {
        guard let machine = machines[stateMachine] else { return Self.notFound(stateMachine) }
        do throws(RaftStateMachineError) {
            return .ok(value: try machine.query(function: function, argument: argument), index: appliedIndex)
        } catch {
            return .failure(Self.clientError(error))
        }
    }

    // MARK: - Snapshots

    /// The canonical image of the whole state: equal states give equal bytes.
    ///
    /// Layout: the version byte 2; the cluster time; the address book sorted by node id; the sessions sorted by
    /// id, each with its last-seen time, watermark and cached replies sorted by sequence number; the
    /// subscriptions sorted by id (each a ``RaftSubscribeRequest``); then each registered state machine's own
    /// image, sorted by id. Integers are varints, counts precede lists.
    ///
    /// - Throws: the error of a state machine whose `snapshot()` fails.
    public func snapshot() throws(RaftStateMachineError) -> [UInt8] {
        var images: [(id: UInt64, image: [UInt8])] = []
        images.reserveCapacity(machines.count)
        for (id, machine) in machines.sorted(by: { $0.key < $1.key }) {
            images.append((id, try machine.snapshot()))
        }
        let image = MasterImage(
            clusterTime: clusterTime,
            addresses: addressBook.sorted { $0.key < $1.key }.map { (id: $0.key, address: $0.value) },
            sessions: sessions.sessions.sorted { $0.key < $1.key }.map { (id: $0.key, session: $0.value) },
            subscriptions: subscriptions.sorted { $0.key < $1.key }.map { (id: $0.key, request: $0.value) },
            machines: images
        )
        return image.bytes
    }

    /// Replaces the whole state with the one `image` (from ``snapshot()``) describes.
    ///
    /// Atomic: the image is decoded and validated, and every state machine restored into a copy, before anything
    /// changes; on error the state is exactly as before. A registered machine absent from the image is reset to
    /// the instance it was registered with.
    ///
    /// - Throws: ``RaftStateMachineError/Code/corruptSnapshot`` if the image does not decode, is not canonical,
    ///   names a state machine that is not registered, or a state machine rejects its part.
    public mutating func restore(from image: [UInt8]) throws(RaftStateMachineError) {
        let decoded: MasterImage
        do {
            decoded = try Wire.decode(MasterImage.self, fromBytes: image, limits: Self.limits(forBytes: image.count))
        } catch {
            throw Self.corrupt("\(error)")
        }
        // Canonical form: one state has one image (this also rejects duplicates and unknown error codes).
        guard decoded.bytes == image else {
            throw Self.corrupt("the image is not in canonical form")
        }
        var restored = initialMachines
        for (id, bytes) in decoded.machines {
            guard var machine = initialMachines[id] else {
                throw Self.corrupt("the image holds state machine \(id), which is not registered")
            }
            do {
                try machine.restore(from: bytes)
            } catch {
                throw Self.corrupt("state machine \(id): \(error.message)")
            }
            restored[id] = machine
        }
        var table: [UInt64: ClientSession] = [:]
        table.reserveCapacity(decoded.sessions.count)
        for (id, session) in decoded.sessions { table[id] = session }
        var addresses: [NodeID: String] = [:]
        for (id, address) in decoded.addresses { addresses[id] = address }

        var subscriptionTable: [UInt64: RaftSubscribeRequest] = [:]
        for (id, request) in decoded.subscriptions { subscriptionTable[id] = request }

        machines = restored
        subscriptions = subscriptionTable
        lastEvents = []
        lastRemovedSubscriptions = []
        sessions = SessionTable(sessions: table)
        addressBook = addresses
        clusterTime = decoded.clusterTime
    }

    // MARK: - Helpers

    /// Limits for decoding `count` untrusted bytes: nothing can claim more elements or bytes than there are.
    private static func limits(forBytes count: Int) -> WireLimits {
        WireLimits(maxBytesLength: count, maxCollectionCount: count, maxDepth: 32)
    }

    private static func clientError(_ error: RaftStateMachineError) -> RaftClientError {
        RaftClientError(
            code: error.code == .functionNotFound ? .functionNotFound : .applicationError, message: error.message)
    }

    private static func invalid(_ message: String) -> RaftReply {
        .failure(RaftClientError(code: .invalidRequest, message: message))
    }

    private static func sessionExpired(_ id: UInt64) -> RaftReply {
        .failure(RaftClientError(code: .sessionExpired, message: "session \(id) is unknown or has expired"))
    }

    private static func notFound(_ id: UInt64) -> RaftReply {
        .failure(RaftClientError(code: .stateMachineNotFound, message: "no state machine is registered as \(id)"))
    }

    private static func corrupt(_ message: String) -> RaftStateMachineError {
        RaftStateMachineError(code: .corruptSnapshot, message: "master snapshot: \(message)")
    }
}

/// The decoded form of a master snapshot image (see ``MasterStateMachine/snapshot()`` for the layout).
struct MasterImage: WireCodable {
    var clusterTime: UInt64
    var addresses: [(id: NodeID, address: String)]
    var sessions: [(id: UInt64, session: ClientSession)]
    var subscriptions: [(id: UInt64, request: RaftSubscribeRequest)]
    var machines: [(id: UInt64, image: [UInt8])]

    init(
        clusterTime: UInt64, addresses: [(id: NodeID, address: String)],
        sessions: [(id: UInt64, session: ClientSession)], subscriptions: [(id: UInt64, request: RaftSubscribeRequest)],
        machines: [(id: UInt64, image: [UInt8])]
    ) {
        self.clusterTime = clusterTime
        self.addresses = addresses
        self.sessions = sessions
        self.subscriptions = subscriptions
        self.machines = machines
    }

    func encode(to writer: inout WireWriter) { writer.writeRawBytes(bytes) }

    /// The image's bytes. The machines' images are nearly all of them: they are appended as they are, after the
    /// rest is encoded, instead of being copied into a buffer that is then copied again.
    var bytes: [UInt8] {
        var bytes = Wire.encodeToBytes(Head(image: self))
        bytes.reserveCapacity(machines.reduce(bytes.count + 10) { $0 + $1.image.count + 20 })
        Wire.appendVarint(UInt64(machines.count), to: &bytes)
        for (id, image) in machines {
            Wire.appendVarint(id, to: &bytes)
            Wire.appendVarint(UInt64(image.count), to: &bytes)
            bytes.append(contentsOf: image)
        }
        return bytes
    }

    /// Everything before the machines' images.
    private struct Head: WireEncodable {
        var image: MasterImage
        func encode(to writer: inout WireWriter) { image.encodeHead(to: &writer) }
    }

    private func encodeHead(to writer: inout WireWriter) {
        writer.writeByte(MasterStateMachine.imageVersion)
        writer.writeVarint(clusterTime)
        writer.writeVarint(UInt64(addresses.count))
        for (id, address) in addresses {
            writer.writeVarint(id)
            writer.write(address)
        }
        writer.writeVarint(UInt64(sessions.count))
        for (id, session) in sessions {
            writer.writeVarint(id)
            writer.writeVarint(session.lastSeen)
            writer.writeVarint(session.watermark)
            writer.writeVarint(UInt64(session.results.count))
            for (sequence, reply) in session.results {
                writer.writeVarint(sequence)
                writer.write(reply)
            }
        }
        writer.writeVarint(UInt64(subscriptions.count))
        for (id, request) in subscriptions {
            writer.writeVarint(id)
            writer.write(request)
        }
    }

    init(from reader: inout WireReader) throws(WireError) {
        let version = try reader.readByte()
        guard version == MasterStateMachine.imageVersion else {
            throw WireError(code: .invalidValue, message: "unknown master image version \(version)")
        }
        clusterTime = try reader.readVarint()

        let addressCount = try reader.readCount(of: "the address book")
        addresses = []
        addresses.reserveCapacity(min(addressCount, reader.remaining))
        for _ in 0..<addressCount {
            let id = try reader.readVarint()
            guard id != noNode, id > (addresses.last?.id ?? noNode) else {
                throw WireError(code: .nonCanonical, message: "address book ids must be non-zero and increasing")
            }
            addresses.append((id, try reader.read(String.self)))
        }

        let sessionCount = try reader.readCount(of: "the session table")
        sessions = []
        sessions.reserveCapacity(min(sessionCount, reader.remaining))
        for _ in 0..<sessionCount {
            let id = try reader.readVarint()
            guard id != 0, id > (sessions.last?.id ?? 0) else {
                throw WireError(code: .nonCanonical, message: "session ids must be non-zero and increasing")
            }
            var session = ClientSession(lastSeen: try reader.readVarint())
            guard session.lastSeen <= clusterTime else {
                throw WireError(code: .invalidValue, message: "session \(id) was seen after the cluster time")
            }
            session.watermark = try reader.readVarint()
            let resultCount = try reader.readCount(of: "the results of session \(id)")
            var previous = session.watermark
            for _ in 0..<resultCount {
                let sequence = try reader.readVarint()
                guard sequence > previous else {
                    throw WireError(
                        code: .nonCanonical,
                        message: "session \(id): cached sequence numbers must increase and exceed the watermark")
                }
                previous = sequence
                session.results.insert(try reader.read(RaftReply.self), for: sequence)
            }
            sessions.append((id, session))
        }

        let subscriptionCount = try reader.readCount(of: "the subscriptions")
        subscriptions = []
        subscriptions.reserveCapacity(min(subscriptionCount, reader.remaining))
        for _ in 0..<subscriptionCount {
            let id = try reader.readVarint()
            guard id != 0, id > (subscriptions.last?.id ?? 0) else {
                throw WireError(code: .nonCanonical, message: "subscription ids must be non-zero and increasing")
            }
            subscriptions.append((id, try reader.read(RaftSubscribeRequest.self)))
        }

        let machineCount = try reader.readCount(of: "the state machine images")
        machines = []
        machines.reserveCapacity(min(machineCount, reader.remaining))
        for _ in 0..<machineCount {
            let id = try reader.readVarint()
            guard id != 0, id > (machines.last?.id ?? 0) else {
                throw WireError(code: .nonCanonical, message: "state machine ids must be non-zero and increasing")
            }
            machines.append((id, try reader.read([UInt8].self)))
        }
    }
}

/// An event raised while applying an entry, with where it came from: the state machine, the entry's index, and
/// its position among that entry's events.
public struct RaftRaisedEventRecord: Sendable, Hashable {
    /// The state machine that raised it.
    public var stateMachine: UInt64
    /// The index of the entry whose command raised it.
    public var index: UInt64
    /// Its position among the entry's events.
    public var ordinal: UInt32
    /// Kind, pattern and payload.
    public var event: RaftRaisedEvent

    /// Creates a record.
    public init(stateMachine: UInt64, index: UInt64, ordinal: UInt32, event: RaftRaisedEvent) {
        self.stateMachine = stateMachine
        self.index = index
        self.ordinal = ordinal
        self.event = event
    }
}
