/// A Raft node identifier. `0` is reserved to mean "no node".
public typealias NodeID = UInt64

/// The reserved "no node" identifier.
public let noNode: NodeID = 0

/// What a log entry carries.
public enum EntryKind: UInt8, Sendable, Hashable {
    /// An application command; the payload is opaque to Raft.
    case normal = 0
    /// The empty entry a new leader appends to commit entries of earlier terms (§5.4.2).
    case noop = 1
    /// A membership change; the payload is an encoded ``Configuration`` (the complete new configuration).
    case configuration = 2
}

/// One Raft log entry.
public struct Entry: Sendable, Hashable {
    /// The position in the log (the first entry has index 1).
    public var index: UInt64
    /// The term of the leader that created the entry.
    public var term: UInt64
    /// What the entry carries.
    public var kind: EntryKind
    /// Opaque bytes (application command, or an encoded configuration).
    public var payload: [UInt8]

    /// Creates an entry.
    public init(index: UInt64, term: UInt64, kind: EntryKind = .normal, payload: [UInt8] = []) {
        self.index = index
        self.term = term
        self.kind = kind
        self.payload = payload
    }

    /// The size the flow-control limits account for: the payload plus a fixed 24-byte header.
    @inlinable public var byteSize: Int { payload.count + 24 }
}

/// The state that must be durable before any message produced alongside it is sent.
public struct HardState: Sendable, Hashable {
    /// The latest term this node has seen.
    public var term: UInt64
    /// The candidate this node voted for in `term`, or ``noNode``.
    public var vote: NodeID
    /// The highest index known to be committed.
    public var commit: UInt64

    /// Creates a hard state.
    public init(term: UInt64 = 0, vote: NodeID = noNode, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// A cluster configuration: the voters and the learners (non-voting members that receive the log).
public struct Configuration: Sendable, Hashable {
    /// Members whose acknowledgements count towards commit and election quorums.
    public var voters: Set<NodeID>
    /// Members that receive the log but do not vote.
    public var learners: Set<NodeID>

    /// Creates a configuration.
    public init(voters: Set<NodeID> = [], learners: Set<NodeID> = []) {
        self.voters = voters
        self.learners = learners.subtracting(voters)
    }

    /// All members, voters and learners.
    public var members: Set<NodeID> { voters.union(learners) }

    /// Encodes the configuration into the payload of a ``EntryKind/configuration`` entry.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + 8 * (voters.count + learners.count))
        func put(_ value: UInt64) {
            for shift in stride(from: 0, to: 64, by: 8) {
                out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        put(UInt64(voters.count))
        for id in voters.sorted() { put(id) }
        put(UInt64(learners.count))
        for id in learners.sorted() { put(id) }
        return out
    }

    /// Decodes a configuration payload; returns `nil` for malformed bytes (never traps).
    public static func decode(_ bytes: [UInt8]) -> Configuration? {
        var position = 0
        func get() -> UInt64? {
            guard position + 8 <= bytes.count else { return nil }
            var value: UInt64 = 0
            for offset in 0..<8 { value |= UInt64(bytes[position + offset]) << UInt64(8 * offset) }
            position += 8
            return value
        }
        guard let voterCount = get(), voterCount <= UInt64(bytes.count / 8) else { return nil }
        var voters = Set<NodeID>()
        for _ in 0..<voterCount {
            guard let id = get() else { return nil }
            voters.insert(id)
        }
        guard let learnerCount = get(), learnerCount <= UInt64(bytes.count / 8) else { return nil }
        var learners = Set<NodeID>()
        for _ in 0..<learnerCount {
            guard let id = get() else { return nil }
            learners.insert(id)
        }
        guard position == bytes.count else { return nil }
        return Configuration(voters: voters, learners: learners)
    }
}

/// Describes a snapshot: the last index and term it covers and the configuration in effect at that index.
public struct SnapshotMetadata: Sendable, Hashable {
    /// The index of the last entry the snapshot covers.
    public var index: UInt64
    /// The term of that entry.
    public var term: UInt64
    /// The configuration in effect at `index`.
    public var configuration: Configuration

    /// Creates snapshot metadata.
    public init(index: UInt64 = 0, term: UInt64 = 0, configuration: Configuration = Configuration()) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }
}

/// A snapshot: metadata plus the state-machine image (opaque bytes).
public struct Snapshot: Sendable, Hashable {
    /// What the snapshot covers.
    public var metadata: SnapshotMetadata
    /// The state-machine image.
    public var data: [UInt8]

    /// Creates a snapshot.
    public init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}

/// A read that is now safe to serve: once the state machine has applied `index`, serve the read `context`.
public struct ReadState: Sendable, Hashable {
    /// The commit index the read must wait for.
    public var index: UInt64
    /// The caller's request context, returned unchanged.
    public var context: [UInt8]

    /// Creates a read state.
    public init(index: UInt64, context: [UInt8]) {
        self.index = index
        self.context = context
    }
}

/// The role of a node.
public enum RaftRole: Sendable, Hashable {
    /// Follows a leader (or waits for one).
    case follower
    /// Asks for pre-votes without bumping its term (§9.6 of the thesis).
    case preCandidate
    /// Asks for votes in a new term.
    case candidate
    /// Leads the current term.
    case leader
}

/// A deterministic 64-bit pseudo-random generator (SplitMix64). The core never draws randomness from anywhere else.
public struct RaftRandom: Sendable, Hashable {
    /// The generator state.
    public var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { self.state = seed }

    /// Returns the next 64 random bits.
    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Returns a value in `0..<bound` (`bound` must be positive).
    @inlinable public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        return next() % bound
    }

    /// Returns `true` with probability `numerator / denominator`.
    @inlinable public mutating func chance(_ numerator: UInt64, in denominator: UInt64) -> Bool {
        next(below: denominator) < numerator
    }
}

/// An error returned by a ``RaftCore`` input. A struct with an extensible code, in the style of grpc-swift's `RPCError`.
public struct RaftError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of error.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Wrapped: String, Sendable, Hashable {
            case notLeader, transferInProgress, proposalDropped, configurationChangeInProgress
            case invalidConfigurationChange, learnerNotCaughtUp, snapshotOutOfDate, invalidArgument
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// This node is not the leader; ``RaftError/leaderHint`` names the leader if one is known.
        public static let notLeader = Code(.notLeader)
        /// The leader is transferring leadership and does not accept proposals.
        public static let transferInProgress = Code(.transferInProgress)
        /// The proposal was dropped by flow control (``RaftSettings/maxUncommittedBytes``).
        public static let proposalDropped = Code(.proposalDropped)
        /// A configuration change is uncommitted, or the leader has not committed an entry in its term yet.
        public static let configurationChangeInProgress = Code(.configurationChangeInProgress)
        /// The requested change is not valid for the current configuration.
        public static let invalidConfigurationChange = Code(.invalidConfigurationChange)
        /// A learner must catch up (match the commit index) before it is promoted.
        public static let learnerNotCaughtUp = Code(.learnerNotCaughtUp)
        /// A snapshot or compaction request refers to an index that is not usable.
        public static let snapshotOutOfDate = Code(.snapshotOutOfDate)
        /// An argument is invalid.
        public static let invalidArgument = Code(.invalidArgument)

        /// The code's name.
        public var description: String { wrapped.rawValue }
    }

    /// The kind of error.
    public var code: Code
    /// A human-readable explanation.
    public var message: String
    /// For ``Code/notLeader``: the leader this node knows of, if any.
    public var leaderHint: NodeID?

    /// Creates an error.
    public init(code: Code, message: String, leaderHint: NodeID? = nil) {
        self.code = code
        self.message = message
        self.leaderHint = leaderHint
    }

    /// Convenience: the "not leader" error.
    public static func notLeader(leaderHint: NodeID?) -> RaftError {
        RaftError(code: .notLeader, message: "this node is not the leader", leaderHint: leaderHint)
    }

    /// "code: message".
    public var description: String { "\(code): \(message)" }
}
