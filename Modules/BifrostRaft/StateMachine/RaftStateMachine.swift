import BifrostRaftCore
import BifrostWire

/// A replicated state machine: the low-level protocol every state machine of a Raft group implements.
///
/// A node applies committed commands to it in log order, on one thread at a time, and runs queries against it
/// between applies. `apply` must be deterministic: the same commands in the same order give the same state and
/// the same results on every node (no clocks, no randomness; use ``RaftApplyContext/time`` for time).
///
/// Queries are `func`s, commands are `mutating func`s: on a struct state machine the compiler enforces that a
/// query never changes the state.
public protocol RaftStateMachine: Sendable {
    /// Applies a committed command and returns its encoded result. A thrown ``RaftStateMachineError`` is the
    /// command's result too: it is replicated, cached for retries, and returned to the client.
    mutating func apply(
        function: UInt64, argument: [UInt8], context: RaftApplyContext
    )
        throws(RaftStateMachineError) -> [UInt8]

    /// Runs a read-only query and returns its encoded result.
    func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8]

    /// An image of the whole state, from which ``restore(from:)`` rebuilds it exactly.
    func snapshot() throws(RaftStateMachineError) -> [UInt8]

    /// Replaces the whole state with the image `snapshot` produced.
    mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError)
}

/// What a command is applied under.
public struct RaftApplyContext: Sendable, Hashable {
    /// The log index of the command's entry. Commands the leader packed into one entry
    /// (``RaftLogCommand/Body/batch(_:)``) share it: it orders commands, but does not name one.
    public var index: UInt64
    /// The term of the command's entry.
    public var term: UInt64
    /// The cluster time the leader stamped on the entry, in milliseconds since the Unix epoch. It never goes
    /// backwards along the log, and every node sees the same value.
    public var time: UInt64
    /// Whether this node was the leader when it applied the entry (an observation, not a guarantee: do not make
    /// the state depend on it).
    public var isLeader: Bool
    /// Collects the events the command raises (see ``notify(kind:pattern:payload:)``); `nil` outside an apply.
    let sink: RaftEventSink?

    /// Creates a context (with no event sink: ``notify(kind:pattern:payload:)`` does nothing).
    public init(index: UInt64, term: UInt64, time: UInt64, isLeader: Bool) {
        self.init(index: index, term: term, time: time, isLeader: isLeader, sink: nil)
    }

    init(index: UInt64, term: UInt64, time: UInt64, isLeader: Bool, sink: RaftEventSink?) {
        self.index = index
        self.term = term
        self.time = time
        self.isLeader = isLeader
        self.sink = sink
    }

    /// Raises a subscription event: subscribers of `kind` on this state machine whose pattern is empty or equals
    /// `pattern` (compared byte for byte, so encode it canonically, e.g. with ``Wire``) receive `payload`, tagged
    /// with this entry's index. Every node records the event as it applies the entry; only the leader delivers it.
    /// A command that throws raises nothing.
    public func notify(kind: UInt64, pattern: [UInt8] = [], payload: [UInt8]) {
        sink?.events.append(RaftRaisedEvent(kind: kind, pattern: pattern, payload: payload))
    }

    /// Raises a subscription event whose pattern and payload `content` encodes only when they are read: when a
    /// watcher is matched or served. Otherwise the same as ``notify(kind:pattern:payload:)``.
    ///
    /// Every node keeps the events it applies for watchers that resume, though most are never read; a command
    /// that raises several events can share one `content` between them.
    public func notify(kind: UInt64, content: any RaftEventContent) {
        sink?.events.append(RaftRaisedEvent(kind: kind, content: content))
    }

    /// Equal when index, term, time and role are equal (the event sink is not part of the value).
    public static func == (lhs: RaftApplyContext, rhs: RaftApplyContext) -> Bool {
        lhs.index == rhs.index && lhs.term == rhs.term && lhs.time == rhs.time && lhs.isLeader == rhs.isLeader
    }

    /// Hashes index, term, time and role.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(term)
        hasher.combine(time)
        hasher.combine(isLeader)
    }
}

/// The pattern and payload of a raised event, encoded when they are read rather than when the event is raised
/// (see ``RaftApplyContext/notify(kind:content:)``).
///
/// Both functions must give the same bytes every time they are called, on every node, as if the event had been
/// raised with ``RaftApplyContext/notify(kind:pattern:payload:)``: positions and replays rely on it. The content
/// is kept until the node's replay buffer drops the event, so it should hold only immutable values.
///
/// A content type may also give a compact form of itself (``compactSize``, ``writeCompact(to:)`` and
/// ``readCompact(from:)``). The replay buffer then keeps those bytes in its ring of memory instead of the content
/// object, and rebuilds the content only for a watcher that replays it: no object per event stays alive in the
/// buffer. Without it (the default), the buffer keeps the content as it is.
public protocol RaftEventContent: Sendable {
    /// The pattern of the event of `kind` (empty: none).
    func pattern(kind: UInt64) -> [UInt8]
    /// The payload of the event of `kind`.
    func payload(kind: UInt64) -> [UInt8]
    /// The length in bytes of this content's compact form, or `nil` (the default) when it has none.
    var compactSize: Int? { get }
    /// Writes the compact form into `bytes`, which holds exactly ``compactSize`` bytes.
    func writeCompact(to bytes: UnsafeMutableRawBufferPointer)
    /// The content whose compact form is `bytes`, which ``writeCompact(to:)`` wrote on this node; `nil` if it cannot
    /// be read. A watcher that replays such an event ends with `eventsLost` rather than skip it. The default returns
    /// `nil`.
    static func readCompact(from bytes: UnsafeRawBufferPointer) -> Self?
}

extension RaftEventContent {
    /// No compact form: the replay buffer keeps the content object.
    public var compactSize: Int? { nil }
    /// Writes nothing (there is no compact form).
    public func writeCompact(to bytes: UnsafeMutableRawBufferPointer) {}
    /// `nil` (there is no compact form).
    public static func readCompact(from bytes: UnsafeRawBufferPointer) -> Self? { nil }
}

/// An event a command raised with ``RaftApplyContext/notify(kind:pattern:payload:)`` or
/// ``RaftApplyContext/notify(kind:content:)``.
public struct RaftRaisedEvent: Sendable, Hashable {
    enum Storage: Sendable {
        case bytes(pattern: [UInt8], payload: [UInt8])
        case deferred(any RaftEventContent)
    }

    /// The subscription kind (e.g. the id of `onKeyInserted`).
    public var kind: UInt64
    private(set) var storage: Storage

    /// The pattern subscribers may filter on (empty: none).
    public var pattern: [UInt8] {
        get {
            switch storage {
            case .bytes(let pattern, _): pattern
            case .deferred(let content): content.pattern(kind: kind)
            }
        }
        set { storage = .bytes(pattern: newValue, payload: payload) }
    }

    /// The event's payload.
    public var payload: [UInt8] {
        get {
            switch storage {
            case .bytes(_, let payload): payload
            case .deferred(let content): content.payload(kind: kind)
            }
        }
        set { storage = .bytes(pattern: pattern, payload: newValue) }
    }

    /// Creates an event.
    public init(kind: UInt64, pattern: [UInt8], payload: [UInt8]) {
        self.kind = kind
        self.storage = .bytes(pattern: pattern, payload: payload)
    }

    /// Creates an event whose pattern and payload `content` encodes when they are read.
    public init(kind: UInt64, content: any RaftEventContent) {
        self.kind = kind
        self.storage = .deferred(content)
    }

    /// Equal when kind, pattern and payload are equal, however they are stored.
    public static func == (lhs: RaftRaisedEvent, rhs: RaftRaisedEvent) -> Bool {
        lhs.kind == rhs.kind && lhs.pattern == rhs.pattern && lhs.payload == rhs.payload
    }

    /// Hashes kind, pattern and payload.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(pattern)
        hasher.combine(payload)
    }
}

/// Collects the events raised while one log entry's commands apply (a batch's commands share it).
final class RaftEventSink: @unchecked Sendable {
    // @unchecked: a master hands its sink to one entry's apply calls at a time, only through their context, and
    // reads it between and after them, all synchronously on the applying thread. It reuses the sink for the next
    // entry only while it holds the only reference (`isKnownUniquelyReferenced`): a context kept by a state machine,
    // or a copy of the master, keeps the old sink, and the master makes a new one. So no two threads ever reach one.
    var events: [RaftRaisedEvent] = []
}

/// An error a state machine returns from a command or a query. A struct with a code and a message.
public struct RaftStateMachineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of error.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Wrapped: String, Sendable, Hashable {
            case functionNotFound, badArgument, rejected, corruptSnapshot
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The state machine has no function with the requested id.
        public static let functionNotFound = Code(.functionNotFound)
        /// The argument could not be decoded.
        public static let badArgument = Code(.badArgument)
        /// The state machine refused the command (a precondition failed).
        public static let rejected = Code(.rejected)
        /// A snapshot image could not be decoded.
        public static let corruptSnapshot = Code(.corruptSnapshot)

        /// The code's name.
        public var description: String { wrapped.rawValue }
    }

    /// The kind of error.
    public var code: Code
    /// A human-readable explanation.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// "code: message".
    public var description: String { "\(code): \(message)" }
}

/// The payload of a normal Raft log entry: a command for the master state machine, stamped with the cluster time.
public struct RaftLogCommand: Sendable, Hashable, WireCodable {
    /// The cluster time (milliseconds since the Unix epoch) the leader stamped; never decreases along the log.
    public var time: UInt64
    /// What to do.
    public var body: Body

    /// Creates a command.
    public init(time: UInt64, body: Body) {
        self.time = time
        self.body = body
    }

    /// The kinds of command.
    public enum Body: Sendable, Hashable {
        /// A command for a registered state machine. `session` 0 means "no session": applied without
        /// deduplication.
        case user(RaftCommandRequest)
        /// Opens a session; the session id is the entry's log index.
        case openSession
        /// Closes a session and drops its cached results.
        case closeSession(UInt64)
        /// Records a member's RPC address in the replicated address book (before the member is added).
        case setAddress(RaftPeer)
        /// Registers a subscription (its id is the entry's index), owned by a client session.
        case subscribe(RaftSubscribeRequest)
        /// Removes a subscription.
        case unsubscribe(UInt64)
        /// Several commands for registered state machines, applied in order as if each had an entry of its own,
        /// except that they share the entry's index and time (see ``RaftApplyContext/index``). A leader packs the
        /// client commands it proposes together into one entry (``RaftNodeConfiguration/maxCommandsPerEntry``):
        /// one log record, one replicated entry and one decode for all of them. Never empty.
        case batch([RaftCommandRequest])
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(time)
        switch body {
        case .user(let request):
            writer.writeByte(0)
            writer.write(request)
        case .openSession:
            writer.writeByte(1)
        case .closeSession(let session):
            writer.writeByte(2)
            writer.writeVarint(session)
        case .setAddress(let peer):
            writer.writeByte(3)
            writer.write(peer)
        case .subscribe(let request):
            writer.writeByte(4)
            writer.write(request)
        case .unsubscribe(let id):
            writer.writeByte(5)
            writer.writeVarint(id)
        case .batch(let requests):
            writer.writeByte(6)
            writer.writeVarint(UInt64(requests.count))
            for request in requests { writer.write(request) }
        }
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        time = try reader.readVarint()
        switch try reader.readByte() {
        case 0: body = .user(try reader.read(RaftCommandRequest.self))
        case 1: body = .openSession
        case 2: body = .closeSession(try reader.readVarint())
        case 3: body = .setAddress(try reader.read(RaftPeer.self))
        case 4: body = .subscribe(try reader.read(RaftSubscribeRequest.self))
        case 5: body = .unsubscribe(try reader.readVarint())
        case 6:
            let count = try reader.readVarint()
            // Every request takes at least six bytes: a count larger than what is left cannot be honest.
            guard count > 0, count <= UInt64(reader.remaining / 6) else {
                throw WireError(
                    code: .invalidValue, message: "a command batch of \(count) in \(reader.remaining) bytes")
            }
            var requests: [RaftCommandRequest] = []
            requests.reserveCapacity(Int(count))
            for _ in 0..<count { requests.append(try reader.read(RaftCommandRequest.self)) }
            body = .batch(requests)
        case let tag: throw WireError(code: .invalidValue, message: "unknown log command tag \(tag)")
        }
    }
}

extension RaftLogCommand {
    /// Decodes a whole encoded command, as `Wire.decode(_:fromBytes:limits:)` does. A `.user` or `.batch` command
    /// (every client write is one) is read straight out of `bytes`, without the copy into a `ByteBuffer` the
    /// general decoder makes: every node decodes every entry it applies. Any other command, and bytes the fast path
    /// does not accept, go through the general decoder, so the result and the errors are the same.
    static func decode(payload bytes: [UInt8], limits: WireLimits) throws(WireError) -> RaftLogCommand {
        if let command = bytes.withUnsafeBytes({ decodeCommands($0) }) { return command }
        return try Wire.decode(RaftLogCommand.self, fromBytes: bytes, limits: limits)
    }

    /// The `.user` or `.batch` command that is the whole of `raw`, or nil (another command, or bytes that do not
    /// decode).
    private static func decodeCommands(_ raw: UnsafeRawBufferPointer) -> RaftLogCommand? {
        var offset = 0
        guard let time = try? WireReader.readVarint(from: raw, at: &offset), offset < raw.count else { return nil }
        let tag = raw[offset]
        offset += 1
        let body: Body
        switch tag {
        case 0:
            guard let request = readRequest(raw, at: &offset) else { return nil }
            body = .user(request)
        case 6:
            guard let count = try? WireReader.readVarint(from: raw, at: &offset),
                count > 0, count <= UInt64((raw.count - offset) / 6)
            else { return nil }
            var requests: [RaftCommandRequest] = []
            requests.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let request = readRequest(raw, at: &offset) else { return nil }
                requests.append(request)
            }
            body = .batch(requests)
        default:
            return nil
        }
        // The command ends the encoding exactly (the general decoder rejects trailing bytes).
        guard offset == raw.count else { return nil }
        return RaftLogCommand(time: time, body: body)
    }

    /// The ``RaftCommandRequest`` encoded at `offset`, which moves past it; nil if it does not fit in `raw`.
    private static func readRequest(_ raw: UnsafeRawBufferPointer, at offset: inout Int) -> RaftCommandRequest? {
        guard let session = try? WireReader.readVarint(from: raw, at: &offset),
            let sequence = try? WireReader.readVarint(from: raw, at: &offset),
            let acknowledged = try? WireReader.readVarint(from: raw, at: &offset),
            let stateMachine = try? WireReader.readVarint(from: raw, at: &offset),
            let function = try? WireReader.readVarint(from: raw, at: &offset),
            let length = try? WireReader.readVarint(from: raw, at: &offset),
            length <= UInt64(raw.count - offset)
        else { return nil }
        let end = offset + Int(length)
        let argument = [UInt8](UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
        offset = end
        return RaftCommandRequest(
            session: session, sequence: sequence, acknowledged: acknowledged, stateMachine: stateMachine,
            function: function, argument: argument)
    }
}

extension RaftLogCommand {
    /// The kinds of command this version reads: the tags 0 to 6.
    static let knownTags: ClosedRange<UInt8> = 0...6

    /// The tag of a command kind this version does not know, when `payload` starts with a cluster time and such a
    /// tag; nil otherwise (a known kind, or bytes that are not a command at all).
    static func newerKind(in payload: [UInt8]) -> UInt8? {
        payload.withUnsafeBytes { raw in
            var offset = 0
            guard (try? WireReader.readVarint(from: raw, at: &offset)) != nil, offset < raw.count,
                !knownTags.contains(raw[offset])
            else { return nil }
            return raw[offset]
        }
    }
}

extension RaftLogCommand {
    /// The entry payload, written into a buffer sized for it (a client command's request plus the time and a tag),
    /// so that encoding never grows the buffer: every proposed entry goes through here.
    var encodedBytes: [UInt8] {
        var capacity = 64
        switch body {
        case .user(let request): capacity = request.encodingCapacity + 16
        case .batch(let requests): capacity = requests.reduce(32) { $0 + $1.encodingCapacity }
        default: break
        }
        return Wire.encodeToBytes(self, capacity: capacity)
    }
}
