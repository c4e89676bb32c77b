import BifrostRPC
import BifrostRaftCore
import BifrostWire
import NIOCore

// The RPC surface of a Raft group: one RPC service per group, shared by peer traffic (``RaftServiceFunction/step``)
// and client traffic (commands, queries, sessions, cluster operations). Every payload below is a ``WireCodable``
// value; the layouts are listed in `docs/protocol.md` ("Raft service").

/// The RPC service id of a Raft group.
public enum RaftServiceID {
    /// The service id under which the node of group `group` registers on its RPC server.
    public static func forGroup(_ group: UInt64) -> UInt64 {
        RPCFunctionID.of("bifrost.raft/\(group)")
    }
}

/// The functions of a group's RPC service.
public enum RaftServiceFunction {
    /// Peer traffic: a ``RaftPeerBatch`` of Raft messages; replies with an empty payload. Nodes use it for peers
    /// that do not know ``exchange`` (older versions).
    public static let step = RPCFunctionID.of("raft.step")
    /// Peer traffic: a ``RaftPeerBatch`` of Raft messages; replies with a ``RaftPeerBatch`` (possibly empty) of
    /// the receiver's answers that need no disk write, produced while it handled the batch (heartbeat and
    /// ReadIndex responses, rejections). A ReadIndex round then costs one call per follower instead of two.
    public static let exchange = RPCFunctionID.of("raft.exchange")
    /// A ``RaftCommandRequest``; replies with a ``RaftReply`` (the command's result and log index).
    public static let command = RPCFunctionID.of("raft.command")
    /// Several commands in one call: an array of ``RaftCommandRequest``s (at most
    /// ``RaftCommandRequest/maxBatchCount``, none empty); replies with an array of as many ``RaftReply``s, in order,
    /// once every command has its reply. Each command is proposed, applied and answered exactly as
    /// ``command`` does it: a failed one (`notLeader`, a state machine error) fails alone. ``RaftClient`` sends the
    /// commands its callers issue on one event loop in one tick this way.
    public static let commands = RPCFunctionID.of("raft.commands")
    /// A ``RaftQueryRequest``; replies with a ``RaftReply`` (the result and the applied index it was served at).
    public static let query = RPCFunctionID.of("raft.query")
    /// Opens a client session (an empty payload); replies with a ``RaftReply`` whose value is the session id
    /// (a varint).
    public static let openSession = RPCFunctionID.of("raft.openSession")
    /// Closes a session (the session id as a varint); replies with a ``RaftReply``.
    public static let closeSession = RPCFunctionID.of("raft.closeSession")
    /// Cluster information (an empty payload); replies with a ``RaftClusterInfo``.
    public static let info = RPCFunctionID.of("raft.info")
    /// A ``RaftMembershipRequest``; replies with a ``RaftReply``.
    public static let membership = RPCFunctionID.of("raft.membership")
    /// A ``RaftSubscribeRequest``; replies with a ``RaftReply`` whose value is the subscription id (a varint).
    public static let subscribe = RPCFunctionID.of("raft.subscribe")
    /// Removes a subscription (its id as a varint); replies with a ``RaftReply``.
    public static let unsubscribe = RPCFunctionID.of("raft.unsubscribe")
    /// A streaming function: a ``RaftWatchRequest``; the leader pushes ``RaftWatchMessage``s.
    public static let watch = RPCFunctionID.of("raft.watch")
}

/// A cluster member: its node id and its RPC address (`host:port`).
public struct RaftPeer: Sendable, Hashable, WireCodable, CustomStringConvertible {
    /// The node id (never ``noNode``).
    public var id: NodeID
    /// The node's RPC address, `host:port` or `[v6]:port`.
    public var address: String

    /// Creates a peer.
    public init(id: NodeID, address: String) {
        self.id = id
        self.address = address
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(id)
        writer.write(address)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        id = try reader.readVarint()
        address = try reader.read(String.self)
    }

    /// "id@address".
    public var description: String { "\(id)@\(address)" }
}

/// How a query is served.
public enum ReadConsistency: UInt8, Sendable, Hashable, CaseIterable, WireCodable {
    /// Linearizable: the leader confirms its leadership with a quorum (ReadIndex) and serves once it has
    /// applied the read index. A follower asks the leader for the read index. The default.
    case linearizable = 0
    /// The leader serves from its state while its leader lease holds (no round trip; assumes bounded clock drift).
    case lease = 1
    /// Any node serves at its applied index, which must be at least the request's `minIndex`; the client raises
    /// `minIndex` to the highest index it has seen, so its reads never go backwards.
    case sequential = 2
    /// Any node serves immediately, with no check.
    case stale = 3
}

/// A typed error of the Raft service, returned inside a ``RaftReply``. A struct with an extensible code, in the
/// style of grpc-swift's `RPCError`.
public struct RaftClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of error.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The code's wire value.
        public let rawValue: UInt8
        private init(_ rawValue: UInt8) { self.rawValue = rawValue }

        /// Decodes a wire value; unknown values map to ``unknown``.
        public init(rawValue: UInt8) {
            self.rawValue = (1...13).contains(rawValue) ? rawValue : 0
        }

        /// An error this version does not know.
        public static let unknown = Code(0)
        /// The node is not the leader; ``RaftClientError/leaderHint`` names the leader if it is known.
        public static let notLeader = Code(1)
        /// No leader is known (an election is in progress); retry after a short wait.
        public static let noLeader = Code(2)
        /// The client session is unknown or has expired; open a new one.
        public static let sessionExpired = Code(3)
        /// No state machine is registered under the requested id.
        public static let stateMachineNotFound = Code(4)
        /// The state machine does not know the requested function.
        public static let functionNotFound = Code(5)
        /// The state machine rejected the command or query (its message explains why). Deterministic: a retry of
        /// the same command gets the same error.
        public static let applicationError = Code(6)
        /// A `sequential` read reached a node that has not applied the requested index yet; try another node.
        public static let staleRead = Code(7)
        /// The request did not complete in time (it may still be applied; retry with the same sequence number).
        public static let timeout = Code(8)
        /// The cluster could not be reached.
        public static let unavailable = Code(9)
        /// The request is malformed or not valid in the current state (e.g. a bad membership change).
        public static let invalidRequest = Code(10)
        /// The leader is busy (flow control, a leadership transfer, a configuration change in progress).
        public static let busy = Code(11)
        /// The command's result was already discarded: the client acknowledged it (a retry of an old sequence
        /// number).
        public static let responseDiscarded = Code(12)
        /// A subscriber fell further behind than the leader's replay buffer reaches: events were lost, and the
        /// subscription ends rather than skip them silently.
        public static let eventsLost = Code(13)

        /// The code's name.
        public var description: String {
            switch rawValue {
            case 1: "notLeader"
            case 2: "noLeader"
            case 3: "sessionExpired"
            case 4: "stateMachineNotFound"
            case 5: "functionNotFound"
            case 6: "applicationError"
            case 7: "staleRead"
            case 8: "timeout"
            case 9: "unavailable"
            case 10: "invalidRequest"
            case 11: "busy"
            case 12: "responseDiscarded"
            case 13: "eventsLost"
            default: "unknown"
            }
        }
    }

    /// The kind of error.
    public var code: Code
    /// A human-readable explanation.
    public var message: String
    /// For ``Code/notLeader``: the leader, when the node knows it.
    public var leaderHint: RaftPeer?

    /// Creates an error.
    public init(code: Code, message: String, leaderHint: RaftPeer? = nil) {
        self.code = code
        self.message = message
        self.leaderHint = leaderHint
    }

    /// "code: message".
    public var description: String { "\(code): \(message)" }
}

extension RaftClientError: WireCodable {
    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeByte(code.rawValue)
        writer.write(message)
        writer.write(leaderHint)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        code = Code(rawValue: try reader.readByte())
        message = try reader.read(String.self)
        leaderHint = try reader.read(RaftPeer?.self)
    }
}

/// The answer to a command, a query, or a cluster operation.
public enum RaftReply: Sendable, Hashable, WireCodable {
    /// Success: the result bytes, and the log index (commands: the entry's index; queries: the applied index the
    /// query was served at).
    case ok(value: [UInt8], index: UInt64)
    /// Failure.
    case failure(RaftClientError)

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        switch self {
        case .ok(let value, let index):
            writer.writeByte(0)
            writer.write(value)
            writer.writeVarint(index)
        case .failure(let error):
            writer.writeByte(1)
            writer.write(error)
        }
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        switch try reader.readByte() {
        case 0:
            let value = try reader.read([UInt8].self)
            self = .ok(value: value, index: try reader.readVarint())
        case 1: self = .failure(try reader.read(RaftClientError.self))
        case let tag: throw WireError(code: .invalidValue, message: "unknown RaftReply tag \(tag)")
        }
    }
}

/// Peer traffic: Raft messages from one node to another, with the sender's address so that the receiver can
/// answer a node it has not heard of yet (a joining node, or one whose address entry is not applied yet).
public struct RaftPeerBatch: Sendable, Hashable, WireCodable {
    /// The sender.
    public var from: RaftPeer
    /// The messages, in the order the sender produced them.
    public var messages: [RaftMessage]

    /// Creates a batch.
    public init(from: RaftPeer, messages: [RaftMessage]) {
        self.from = from
        self.messages = messages
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.write(from)
        writer.writeVarint(UInt64(messages.count))
        for message in messages { RaftMessageCodec.encode(message, into: &writer) }
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        from = try reader.read(RaftPeer.self)
        let count = try reader.readCount(of: "Raft messages")
        var messages: [RaftMessage] = []
        messages.reserveCapacity(min(count, 1024))
        for _ in 0..<count { messages.append(try RaftMessageCodec.decode(from: &reader)) }
        self.messages = messages
    }
}

extension RaftMessage {
    /// Whether a `raft.exchange` call carrying this message waits for the receiver's answers, which then ride back
    /// in its reply: a heartbeat or a ReadIndex request (answered without a disk write), or an append (its
    /// acknowledgement is sent once the entries are durable).
    var asksForAnswer: Bool {
        switch body {
        case .heartbeat, .readIndex, .append: true
        default: false
        }
    }

    /// Whether this is an append or a snapshot chunk: the transport's data traffic, which a peer may answer only
    /// once it has written it. Everything else is control traffic (see ``RaftTransport``).
    var isData: Bool {
        switch body {
        case .append, .snapshot: true
        default: false
        }
    }
}

/// A command for a state machine, sent to the leader.
///
/// Exactly-once: a client with a session numbers its commands 1, 2, 3, ... and retries a command with the same
/// number; the replicated session table applies each number once and answers retries with the first result.
/// `acknowledged` tells the table which results the client no longer needs (every sequence number up to it).
public struct RaftCommandRequest: Sendable, Hashable, WireCodable {
    /// The client session (0: no session, no deduplication).
    public var session: UInt64
    /// The command's sequence number in the session (from 1).
    public var sequence: UInt64
    /// The highest sequence number such that the client has the results of it and of every earlier command.
    public var acknowledged: UInt64
    /// The target state machine.
    public var stateMachine: UInt64
    /// The state machine's function.
    public var function: UInt64
    /// The encoded argument.
    public var argument: [UInt8]

    /// Creates a request.
    public init(
        session: UInt64, sequence: UInt64, acknowledged: UInt64, stateMachine: UInt64, function: UInt64,
        argument: [UInt8]
    ) {
        self.session = session
        self.sequence = sequence
        self.acknowledged = acknowledged
        self.stateMachine = stateMachine
        self.function = function
        self.argument = argument
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(session)
        writer.writeVarint(sequence)
        writer.writeVarint(acknowledged)
        writer.writeVarint(stateMachine)
        writer.writeVarint(function)
        writer.write(argument)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        session = try reader.readVarint()
        sequence = try reader.readVarint()
        acknowledged = try reader.readVarint()
        stateMachine = try reader.readVarint()
        function = try reader.readVarint()
        argument = try reader.read([UInt8].self)
    }
}

/// A read-only query for a state machine.
public struct RaftQueryRequest: Sendable, Hashable, WireCodable {
    /// How the query is served.
    public var consistency: ReadConsistency
    /// For ``ReadConsistency/sequential``: the lowest applied index the serving node may answer at.
    public var minIndex: UInt64
    /// The target state machine.
    public var stateMachine: UInt64
    /// The state machine's function.
    public var function: UInt64
    /// The encoded argument.
    public var argument: [UInt8]

    /// Creates a request.
    public init(
        consistency: ReadConsistency, minIndex: UInt64, stateMachine: UInt64, function: UInt64, argument: [UInt8]
    ) {
        self.consistency = consistency
        self.minIndex = minIndex
        self.stateMachine = stateMachine
        self.function = function
        self.argument = argument
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.write(consistency)
        writer.writeVarint(minIndex)
        writer.writeVarint(stateMachine)
        writer.writeVarint(function)
        writer.write(argument)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        consistency = try reader.read(ReadConsistency.self)
        minIndex = try reader.readVarint()
        stateMachine = try reader.readVarint()
        function = try reader.readVarint()
        argument = try reader.read([UInt8].self)
    }
}

/// A cluster operation, sent to the leader (a follower answers `notLeader` with a hint).
public enum RaftMembershipRequest: Sendable, Hashable, WireCodable {
    /// Adds a node as a learner, then promotes it to voter once it has caught up (the usual way to grow a
    /// cluster). The reply comes when the node is a voter.
    case join(RaftPeer)
    /// Adds a node as a learner (non-voting member) only.
    case addLearner(RaftPeer)
    /// Promotes a caught-up learner to voter.
    case promote(NodeID)
    /// Removes a voter or learner (the leader may remove itself: it hands over leadership first).
    case remove(NodeID)
    /// Transfers leadership to a voter.
    case transferLeadership(NodeID)

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        switch self {
        case .join(let peer):
            writer.writeByte(0)
            writer.write(peer)
        case .addLearner(let peer):
            writer.writeByte(1)
            writer.write(peer)
        case .promote(let id):
            writer.writeByte(2)
            writer.writeVarint(id)
        case .remove(let id):
            writer.writeByte(3)
            writer.writeVarint(id)
        case .transferLeadership(let id):
            writer.writeByte(4)
            writer.writeVarint(id)
        }
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        switch try reader.readByte() {
        case 0: self = .join(try reader.read(RaftPeer.self))
        case 1: self = .addLearner(try reader.read(RaftPeer.self))
        case 2: self = .promote(try reader.readVarint())
        case 3: self = .remove(try reader.readVarint())
        case 4: self = .transferLeadership(try reader.readVarint())
        case let tag: throw WireError(code: .invalidValue, message: "unknown membership request tag \(tag)")
        }
    }
}

/// What one node reports about itself and its group.
public struct RaftClusterInfo: Sendable, Hashable, WireCodable {
    /// The group id.
    public var group: UInt64
    /// The answering node.
    public var node: RaftPeer
    /// The node's role: `follower`, `preCandidate`, `candidate`, `leader`, `learner`, or `stopped` (shut down or halted).
    public var role: String
    /// The node's current term.
    public var term: UInt64
    /// The leader the node knows of.
    public var leader: RaftPeer?
    /// The commit index.
    public var commitIndex: UInt64
    /// The applied index.
    public var appliedIndex: UInt64
    /// The last log index.
    public var lastIndex: UInt64
    /// The index of the latest snapshot.
    public var snapshotIndex: UInt64
    /// The voters (with addresses, when the node knows them; an unknown address is empty).
    public var voters: [RaftPeer]
    /// The learners.
    public var learners: [RaftPeer]

    /// Creates an info value.
    public init(
        group: UInt64, node: RaftPeer, role: String, term: UInt64, leader: RaftPeer?, commitIndex: UInt64,
        appliedIndex: UInt64, lastIndex: UInt64, snapshotIndex: UInt64, voters: [RaftPeer], learners: [RaftPeer]
    ) {
        self.group = group
        self.node = node
        self.role = role
        self.term = term
        self.leader = leader
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.lastIndex = lastIndex
        self.snapshotIndex = snapshotIndex
        self.voters = voters
        self.learners = learners
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(group)
        writer.write(node)
        writer.write(role)
        writer.writeVarint(term)
        writer.write(leader)
        writer.writeVarint(commitIndex)
        writer.writeVarint(appliedIndex)
        writer.writeVarint(lastIndex)
        writer.writeVarint(snapshotIndex)
        writer.write(voters)
        writer.write(learners)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readVarint()
        node = try reader.read(RaftPeer.self)
        role = try reader.read(String.self)
        term = try reader.readVarint()
        leader = try reader.read(RaftPeer?.self)
        commitIndex = try reader.readVarint()
        appliedIndex = try reader.readVarint()
        lastIndex = try reader.readVarint()
        snapshotIndex = try reader.readVarint()
        voters = try reader.read([RaftPeer].self)
        learners = try reader.read([RaftPeer].self)
    }
}

/// Registers a subscription: events of `kind` raised by state machine `stateMachine` whose pattern is empty or
/// equals `pattern`.
public struct RaftSubscribeRequest: Sendable, Hashable, WireCodable {
    /// The client session that owns the subscription (it ends when the session expires; 0: never).
    public var session: UInt64
    /// The state machine.
    public var stateMachine: UInt64
    /// The subscription kind.
    public var kind: UInt64
    /// The canonical pattern bytes (empty: every event of the kind).
    public var pattern: [UInt8]

    /// Creates a request.
    public init(session: UInt64, stateMachine: UInt64, kind: UInt64, pattern: [UInt8]) {
        self.session = session
        self.stateMachine = stateMachine
        self.kind = kind
        self.pattern = pattern
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(session)
        writer.writeVarint(stateMachine)
        writer.writeVarint(kind)
        writer.write(pattern)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        session = try reader.readVarint()
        stateMachine = try reader.readVarint()
        kind = try reader.readVarint()
        pattern = try reader.read([UInt8].self)
    }

    /// Whether an event matches.
    public func matches(stateMachine: UInt64, kind: UInt64, pattern: [UInt8]) -> Bool {
        self.stateMachine == stateMachine && self.kind == kind && (self.pattern.isEmpty || self.pattern == pattern)
    }
}

/// Attaches to a subscription's event stream at the leader, resuming after the position `(afterIndex,
/// afterOrdinal)`: every event at a later position is delivered, in order, once.
public struct RaftWatchRequest: Sendable, Hashable, WireCodable {
    /// The subscription id.
    public var subscription: UInt64
    /// The log index of the last event received (the subscription id for a new subscriber).
    public var afterIndex: UInt64
    /// The ordinal of the last event received within its entry (`UInt32.max`: none of that entry's events are
    /// wanted).
    public var afterOrdinal: UInt32

    /// Creates a request.
    public init(subscription: UInt64, afterIndex: UInt64, afterOrdinal: UInt32) {
        self.subscription = subscription
        self.afterIndex = afterIndex
        self.afterOrdinal = afterOrdinal
    }

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(subscription)
        writer.writeVarint(afterIndex)
        writer.write(afterOrdinal)
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        subscription = try reader.readVarint()
        afterIndex = try reader.readVarint()
        afterOrdinal = try reader.read(UInt32.self)
    }
}

/// One message of a watch stream.
public enum RaftWatchMessage: Sendable, Hashable, WireCodable {
    /// An event.
    case event(RaftSubscriptionEvent)
    /// The stream ends: `notLeader`/`noLeader` (reattach to the leader), `eventsLost`, `sessionExpired` (the
    /// subscription is gone), or `busy` (the node has not applied the subscription yet; retry).
    case end(RaftClientError)

    /// See ``WireEncodable``.
    public func encode(to writer: inout WireWriter) {
        switch self {
        case .event(let event):
            writer.writeByte(0)
            writer.writeVarint(event.index)
            writer.write(event.ordinal)
            writer.write(event.payload)
        case .end(let error):
            writer.writeByte(1)
            writer.write(error)
        }
    }

    /// See ``WireDecodable``.
    public init(from reader: inout WireReader) throws(WireError) {
        switch try reader.readByte() {
        case 0:
            let index = try reader.readVarint()
            let ordinal = try reader.read(UInt32.self)
            self = .event(RaftSubscriptionEvent(index: index, ordinal: ordinal, payload: try reader.read([UInt8].self)))
        case 1: self = .end(try reader.read(RaftClientError.self))
        case let tag: throw WireError(code: .invalidValue, message: "unknown watch message tag \(tag)")
        }
    }
}

extension RaftReply {
    /// The encoding, in a buffer sized for it (a value plus a few varints, or an error's message and fields), so
    /// that encoding never grows the buffer: every reply to a client goes through here.
    var encoded: ByteBuffer { Wire.encode(self, capacity: encodingCapacity) }

    /// Room for the encoding.
    var encodingCapacity: Int {
        switch self {
        case .ok(let value, _): value.count + 24
        case .failure(let error): error.message.utf8.count + 64
        }
    }

    /// The encoding of `replies` as an array, in a buffer sized for it.
    static func encode(_ replies: [RaftReply]) -> ByteBuffer {
        Wire.encode(replies, capacity: replies.reduce(10) { $0 + $1.encodingCapacity })
    }
}

extension RaftCommandRequest {
    /// The most commands one ``RaftServiceFunction/commands`` call may carry.
    public static let maxBatchCount = 1024

    /// Room for the encoding: the argument plus the header's varints.
    var encodingCapacity: Int { argument.count + 64 }

    /// The encoding, in a buffer sized for it (see ``encodingCapacity``): every attempt of a command sends this.
    var encoded: ByteBuffer { Wire.encode(self, capacity: encodingCapacity) }

    /// The encoding of `requests` as an array (a ``RaftServiceFunction/commands`` payload), in a buffer sized for
    /// it.
    static func encode(_ requests: [RaftCommandRequest]) -> ByteBuffer {
        Wire.encode(requests, capacity: requests.reduce(10) { $0 + $1.encodingCapacity })
    }
}
