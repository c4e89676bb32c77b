/// A single-server membership change (§4.1 of the Raft thesis).
public enum MembershipChange: Sendable, Hashable {
    /// Adds a non-voting learner that receives the log.
    case addLearner(NodeID)
    /// Promotes a caught-up learner to voter.
    case promote(NodeID)
    /// Removes a voter or a learner (the leader may remove itself).
    case remove(NodeID)
}

/// The pure Raft state machine of one node: no I/O, no clock, no randomness of its own.
///
/// Drive it with ``tick()``, ``step(_:)``, ``propose(_:)``, ``readIndex(context:)``, ``changeMembership(_:)`` and
/// ``transferLeadership(to:)``; collect the work to do with ``ready()``, carry it out in the documented order (see
/// ``RaftReady``) and acknowledge it with ``advance(_:)``.
public struct RaftCore<Storage: RaftLogReader>: Sendable {
    /// This node.
    public let id: NodeID
    /// The settings the core runs with.
    public let settings: RaftSettings

    var log: RaftLog<Storage>
    /// The current term.
    public private(set) var term: UInt64
    /// The vote cast in the current term, or ``noNode``.
    public private(set) var vote: NodeID
    /// The role.
    public private(set) var role: RaftRole = .follower
    /// The known leader, or ``noNode``.
    public private(set) var leader: NodeID = noNode
    /// The configuration in effect: the latest configuration in the log (effective when appended).
    public private(set) var configuration: Configuration
    var configurationIndex: UInt64
    var pendingConfigurationIndex: UInt64 = 0

    var progress: [NodeID: Progress] = [:]
    var votes: [NodeID: Bool] = [:]
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var rng: RaftRandom
    var messages: [RaftMessage] = []
    var readStates: [ReadState] = []

    struct PendingRead: Sendable {
        var context: [UInt8]
        var from: NodeID
        var index: UInt64
        var sequence: UInt64
    }
    var pendingReads: [PendingRead] = []
    var readsAwaitingCommit: [(context: [UInt8], from: NodeID)] = []
    var nextReadSequence: UInt64 = 1
    var readRoundPending = false
    var lastReadSequenceSent: UInt64 = 0
    /// The tick each recent heartbeat round was sent (ring of 64), for the leader lease.
    var roundSentAt = [Int](repeating: 0, count: 64)
    /// Ticks since the core started (the only clock).
    var ticks = 0
    /// The tick this node last heard from (or was) a leader; starts at boot, so a restarted node honours the lease
    /// it may have granted before crashing.
    var leaderContact = 0
    /// A leadership transfer was started in this term: lease reads stay off until the term ends.
    var leaseRevoked = false

    var transferee: NodeID = noNode
    var transferElapsed = 0
    var uncommittedBytes = 0
    var lastHardState: HardState
    var lastRole: (role: RaftRole, leader: NodeID) = (.follower, noNode)
    var incomingSnapshot: Snapshot?

    /// Creates a core over `storage` (which holds the persisted hard state, snapshot and entries).
    /// - Parameter randomSeed: seeds the generator that randomizes election timeouts.
    public init(
        id: NodeID, storage: Storage, settings: RaftSettings = RaftSettings(), randomSeed: UInt64
    )
        throws(RaftError)
    {
        guard id != noNode else { throw RaftError(code: .invalidArgument, message: "node id 0 is reserved") }
        guard settings.heartbeatTick > 0, settings.electionTick > settings.heartbeatTick else {
            throw RaftError(code: .invalidArgument, message: "need 0 < heartbeatTick < electionTick")
        }
        guard settings.maxInflightMessages > 0, settings.maxSizePerMessage > 0, settings.snapshotChunkBytes > 0 else {
            throw RaftError(code: .invalidArgument, message: "flow-control limits must be positive")
        }
        guard settings.readOnlyOption == .safe || settings.checkQuorum else {
            throw RaftError(code: .invalidArgument, message: "lease-based reads require checkQuorum")
        }
        self.id = id
        self.settings = settings
        self.log = RaftLog(storage: storage, applied: settings.applied)
        self.term = storage.hardState.term
        self.vote = storage.hardState.vote
        self.rng = RaftRandom(seed: randomSeed ^ (id &* 0x9E37_79B9_7F4A_7C15))
        self.configuration = storage.snapshotMetadata.configuration
        self.configurationIndex = storage.snapshotMetadata.index
        self.lastHardState = HardState(term: term, vote: vote, commit: log.committed)
        recomputeConfiguration()
        becomeFollower(term: term, leader: noNode)
    }

    // MARK: - Public inputs

    /// Read and write access to the storage. The shell writes persisted entries, hard state and snapshots here
    /// (before calling ``advance(_:)``) and compacts it after creating a snapshot.
    public var storage: Storage {
        get { log.storage }
        // In place: a value-type storage is not copied when the shell appends to it.
        _modify { yield &log.storage }
    }

    /// Advances logical time by one tick.
    public mutating func tick() {
        ticks += 1
        if role == .leader { leaderContact = ticks }
        switch role {
        case .leader: tickLeader()
        case .follower, .preCandidate, .candidate: tickElection()
        }
    }

    /// Handles a message from a peer. Invalid, stale or unexpected messages are dropped (never a crash).
    public mutating func step(_ message: RaftMessage) {
        guard message.to == id, message.from != noNode, message.from != id else { return }
        stepInternal(message)
    }

    /// Proposes application payloads. Returns the log indexes assigned to them; they are committed when they
    /// appear in ``RaftReady/committedEntries`` (the shell should check the entry term matches ``term``).
    @discardableResult
    public mutating func propose(_ payloads: [[UInt8]]) throws(RaftError) -> ClosedRange<UInt64> {
        guard role == .leader else { throw RaftError.notLeader(leaderHint: leader == noNode ? nil : leader) }
        guard transferee == noNode else {
            throw RaftError(code: .transferInProgress, message: "leadership transfer to \(transferee) in progress")
        }
        guard !payloads.isEmpty else { throw RaftError(code: .invalidArgument, message: "nothing to propose") }
        var bytes = 0
        for payload in payloads { bytes += payload.count }
        if settings.maxUncommittedBytes > 0 && uncommittedBytes > 0
            && uncommittedBytes + bytes > settings.maxUncommittedBytes
        {
            throw RaftError(code: .proposalDropped, message: "too many uncommitted bytes (\(uncommittedBytes))")
        }
        uncommittedBytes += bytes
        let first = log.lastIndex + 1
        var entries: [Entry] = []
        entries.reserveCapacity(payloads.count)
        for (offset, payload) in payloads.enumerated() {
            entries.append(Entry(index: first + UInt64(offset), term: term, kind: .normal, payload: payload))
        }
        appendAsLeader(entries)
        return first...(first + UInt64(payloads.count) - 1)
    }

    /// Requests a linearizable read. The result arrives as a ``ReadState`` carrying `context` in a later
    /// ``RaftReady/readStates`` (or never, if leadership is lost: retry on a timeout). A follower forwards the
    /// request to its leader.
    public mutating func readIndex(context: [UInt8]) throws(RaftError) {
        if role == .leader {
            handleReadRequest(context: context, from: id)
        } else if leader != noNode {
            send(to: leader, .readIndex(context: context))
        } else {
            throw RaftError.notLeader(leaderHint: nil)
        }
    }

    /// Appends a single-server membership change. Allowed only on a leader that has committed an entry in its term
    /// and has no other configuration change uncommitted. The new configuration takes effect when appended.
    @discardableResult
    public mutating func changeMembership(_ change: MembershipChange) throws(RaftError) -> UInt64 {
        guard role == .leader else { throw RaftError.notLeader(leaderHint: leader == noNode ? nil : leader) }
        guard transferee == noNode else {
            throw RaftError(code: .transferInProgress, message: "leadership transfer in progress")
        }
        guard pendingConfigurationIndex <= log.committed, log.term(at: log.committed) == term else {
            throw RaftError(
                code: .configurationChangeInProgress,
                message: "a configuration change is uncommitted or the leader has not committed in its term"
            )
        }
        var next = configuration
        switch change {
        case .addLearner(let node):
            guard node != noNode, !configuration.members.contains(node) else {
                throw RaftError(code: .invalidConfigurationChange, message: "\(node) is already a member")
            }
            next.learners.insert(node)
        case .promote(let node):
            guard configuration.learners.contains(node) else {
                throw RaftError(code: .invalidConfigurationChange, message: "\(node) is not a learner")
            }
            guard let pr = progress[node], pr.match >= log.committed else {
                throw RaftError(code: .learnerNotCaughtUp, message: "learner \(node) has not caught up")
            }
            next.learners.remove(node)
            next.voters.insert(node)
        case .remove(let node):
            guard configuration.members.contains(node) else {
                throw RaftError(code: .invalidConfigurationChange, message: "\(node) is not a member")
            }
            next.voters.remove(node)
            next.learners.remove(node)
            guard !next.voters.isEmpty else {
                throw RaftError(code: .invalidConfigurationChange, message: "cannot remove the last voter")
            }
        }
        let index = log.lastIndex + 1
        appendAsLeader([Entry(index: index, term: term, kind: .configuration, payload: next.encoded())])
        return index
    }

    /// Starts a leadership transfer to `target`: the leader stops accepting proposals, brings the target up to
    /// date and sends it `TimeoutNow`. The transfer is abandoned after ``RaftSettings/transferTimeoutTicks``.
    public mutating func transferLeadership(to target: NodeID) throws(RaftError) {
        guard role == .leader else { throw RaftError.notLeader(leaderHint: leader == noNode ? nil : leader) }
        if target == id { return }
        guard configuration.voters.contains(target), progress[target] != nil else {
            throw RaftError(code: .invalidArgument, message: "\(target) is not a voter")
        }
        if transferee == target { return }
        transferee = target
        leaseRevoked = true
        transferElapsed = 0
        if progress[target]?.match == log.lastIndex {
            send(to: target, .timeoutNow)
        } else {
            sendAppend(to: target, sendIfEmpty: true)
        }
    }

    /// Starts an election now (as if the election timeout elapsed), if this node is a voter.
    public mutating func campaign() {
        if role != .leader { startCampaign(transfer: false) }
    }

    /// `true` when ``ready()`` has work.
    public var hasReady: Bool {
        if !messages.isEmpty || !readStates.isEmpty || (readRoundPending && role == .leader) { return true }
        if log.unstable.count > log.unstableInProgress { return true }
        if log.unstableSnapshot != nil && !log.snapshotInProgress { return true }
        if log.committed > log.applying { return true }
        if currentHardState != lastHardState { return true }
        if lastRole.role != role || lastRole.leader != leader { return true }
        return false
    }

    /// Collects the work to do (see ``RaftReady`` for the order). Batches must be handled, and acknowledged with
    /// ``advance(_:)``, in the order they were returned.
    public mutating func ready() -> RaftReady {
        flushReadRound()
        var snapshot: Snapshot?
        if let snap = log.unstableSnapshot, !log.snapshotInProgress {
            snapshot = snap
            log.snapshotInProgress = true
            log.applying = max(log.applying, snap.metadata.index)
        }
        var entries: [Entry] = []
        if log.unstable.count > log.unstableInProgress {
            entries = Array(log.unstable[log.unstableInProgress...])
            log.unstableInProgress = log.unstable.count
        }
        let committed = log.nextCommittedEntries(maxBytes: Int.max)
        if let last = committed.last { log.applying = last.index }
        let hardState = currentHardState
        var changedHardState: HardState?
        if hardState != lastHardState {
            changedHardState = hardState
            lastHardState = hardState
        }
        var roleChange: (role: RaftRole, leader: NodeID)?
        if lastRole.role != role || lastRole.leader != leader {
            roleChange = (role, leader)
            lastRole = (role, leader)
        }
        let out = RaftReady(
            hardState: changedHardState,
            entries: entries,
            snapshot: snapshot,
            messages: messages,
            committedEntries: committed,
            readStates: readStates,
            roleChange: roleChange
        )
        messages.removeAll(keepingCapacity: true)
        readStates.removeAll()
        return out
    }

    /// Acknowledges a batch from ``ready()``: its snapshot, entries and hard state are durable, its messages were
    /// sent and its committed entries applied.
    public mutating func advance(_ ready: RaftReady) {
        if let snap = ready.snapshot {
            log.stableSnapshotTo(snap.metadata.index)
            log.applied = max(log.applied, snap.metadata.index)
        }
        if let last = ready.entries.last {
            log.stableTo(index: last.index, term: last.term)
        }
        if let last = ready.committedEntries.last {
            log.applied = max(log.applied, last.index)
            if role == .leader && settings.maxUncommittedBytes > 0 {
                for entry in ready.committedEntries where entry.term == term {
                    uncommittedBytes = max(0, uncommittedBytes - entry.payload.count)
                }
            }
        }
        if role == .leader && !ready.entries.isEmpty {
            if maybeCommit() { afterCommitAdvanced() }
        }
    }

    /// Records that the shell applied the committed entries it was handed through `index` before calling
    /// ``advance(_:)`` with the ready that carried them. Committed entries are durable on a quorum, so a shell may
    /// apply them before its own log write of that ready finishes. This lets ``snapshotMetadata(at:)`` see them;
    /// it never goes past the entries handed out.
    public mutating func markApplied(through index: UInt64) {
        log.applied = max(log.applied, min(index, log.applying))
    }

    /// The metadata for a snapshot of the state machine at `index` (which must be applied and still in the log):
    /// the term of that entry and the configuration in effect there. Use it with the storage's compaction.
    public func snapshotMetadata(at index: UInt64) -> SnapshotMetadata? {
        guard index <= log.applied, let entryTerm = log.term(at: index) else { return nil }
        return SnapshotMetadata(index: index, term: entryTerm, configuration: configuration(at: index))
    }

    /// The current status: role, term, leader, commit and applied index, per-follower progress.
    public var status: RaftStatus {
        var peers: [NodeID: ProgressStatus] = [:]
        if role == .leader {
            for (node, pr) in progress {
                peers[node] = ProgressStatus(
                    match: pr.match,
                    next: pr.next,
                    state: pr.state,
                    inflightMessages: pr.inflightCount,
                    inflightBytes: pr.inflightBytes,
                    isLearner: configuration.learners.contains(node)
                )
            }
        }
        return RaftStatus(
            id: id,
            role: role,
            term: term,
            vote: vote,
            leader: leader,
            commit: log.committed,
            applied: log.applied,
            lastIndex: log.lastIndex,
            configuration: configuration,
            transferee: transferee,
            progress: peers
        )
    }

    /// For a per-request lease read: the index a read may be served at right now without a quorum round, or `nil`
    /// when this node cannot serve one (not the leader, no valid lease, or the leader has not committed an entry
    /// in its term yet). Valid whatever ``RaftSettings/readOnlyOption`` is, but needs ``RaftSettings/checkQuorum``;
    /// the caller falls back to ``readIndex(context:)`` on `nil`. Same clock assumption as
    /// ``ReadOnlyOption/leaseBased``.
    public var leaseReadIndex: UInt64? {
        guard role == .leader, log.term(at: log.committed) == term else { return nil }
        if configuration.voters == [id] || leaseIsValid { return log.committed }
        return nil
    }

    /// The commit index.
    public var commitIndex: UInt64 { log.committed }
    /// The applied index (acknowledged through ``advance(_:)``).
    public var appliedIndex: UInt64 { log.applied }
    /// The last log index (including unpersisted entries).
    public var lastIndex: UInt64 { log.lastIndex }
    /// The term of the entry at `index`, when it is in the log (or is the snapshot index).
    public func term(at index: UInt64) -> UInt64? { log.term(at: index) }
    /// Entries in `lo..<hi` from the log (including unpersisted ones); `nil` when `lo` is compacted.
    public func entries(from lo: UInt64, to hi: UInt64) -> [Entry]? { log.entries(from: lo, to: hi, maxBytes: .max) }

    // MARK: - Roles

    var currentHardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }

    var isPromotable: Bool {
        configuration.voters.contains(id) && log.unstableSnapshot == nil
    }

    var quorum: Int { configuration.voters.count / 2 + 1 }

    mutating func reset(term newTerm: UInt64) {
        if newTerm != term {
            term = newTerm
            vote = noNode
        }
        leader = noNode
        electionElapsed = 0
        heartbeatElapsed = 0
        randomizedElectionTimeout =
            settings.electionTick + Int(rng.next(below: UInt64(settings.electionTick)))
        votes = [:]
        progress = [:]
        transferee = noNode
        transferElapsed = 0
        pendingReads = []
        readsAwaitingCommit = []
        readRoundPending = false
        uncommittedBytes = 0
        leaseRevoked = false
    }

    mutating func becomeFollower(term newTerm: UInt64, leader newLeader: NodeID) {
        reset(term: newTerm)
        role = .follower
        leader = newLeader
    }

    mutating func becomePreCandidate() {
        // Pre-vote: neither the term nor the vote changes (thesis §9.6).
        votes = [:]
        leader = noNode
        randomizedElectionTimeout =
            settings.electionTick + Int(rng.next(below: UInt64(settings.electionTick)))
        role = .preCandidate
        progress = [:]
        pendingReads = []
        readsAwaitingCommit = []
    }

    mutating func becomeCandidate() {
        reset(term: term + 1)
        vote = id
        role = .candidate
    }

    mutating func becomeLeader() {
        reset(term: term)
        role = .leader
        leader = id
        for node in configuration.members where node != id {
            var pr = Progress(next: log.lastIndex + 1)
            pr.recentActive = true
            progress[node] = pr
        }
        // No configuration change until the no-op (hence every earlier entry) is committed.
        pendingConfigurationIndex = log.lastIndex
        appendAsLeader([Entry(index: log.lastIndex + 1, term: term, kind: .noop)])
    }

    mutating func startCampaign(transfer: Bool) {
        guard isPromotable else { return }
        if settings.preVote && !transfer {
            runPreVote()
        } else {
            runElection(transfer: transfer)
        }
    }

    mutating func runPreVote() {
        becomePreCandidate()
        votes[id] = true
        if grantedVotes() >= quorum {
            runElection(transfer: false)
            return
        }
        let request = VoteRequest(lastIndex: log.lastIndex, lastTerm: log.lastTerm, preVote: true, transfer: false)
        for node in configuration.voters.sorted() where node != id {
            messages.append(RaftMessage(from: id, to: node, term: term + 1, body: .vote(request)))
        }
    }

    mutating func runElection(transfer: Bool) {
        becomeCandidate()
        votes[id] = true
        if grantedVotes() >= quorum {
            becomeLeader()
            return
        }
        let request = VoteRequest(lastIndex: log.lastIndex, lastTerm: log.lastTerm, preVote: false, transfer: transfer)
        for node in configuration.voters.sorted() where node != id {
            messages.append(RaftMessage(from: id, to: node, term: term, body: .vote(request)))
        }
    }

    func grantedVotes() -> Int {
        var count = 0
        for node in configuration.voters where votes[node] == true { count += 1 }
        return count
    }

    func rejectedVotes() -> Int {
        var count = 0
        for node in configuration.voters where votes[node] == false { count += 1 }
        return count
    }

    // MARK: - Ticks

    mutating func tickElection() {
        electionElapsed += 1
        if isPromotable && electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            startCampaign(transfer: false)
        }
    }

    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if transferee != noNode {
            transferElapsed += 1
            let limit = settings.transferTimeoutTicks > 0 ? settings.transferTimeoutTicks : settings.electionTick
            if transferElapsed >= limit {
                transferee = noNode
                transferElapsed = 0
            }
        }
        if electionElapsed >= settings.electionTick {
            electionElapsed = 0
            if settings.checkQuorum {
                var active = configuration.voters.contains(id) ? 1 : 0
                for node in configuration.voters where node != id && progress[node]?.recentActive == true {
                    active += 1
                }
                for node in Array(progress.keys) { progress[node]?.recentActive = false }
                if active < quorum {
                    becomeFollower(term: term, leader: noNode)
                    return
                }
            }
        }
        for node in progress.keys.sorted() where progress[node]?.state == .snapshot {
            progress[node]?.stalledTicks += 1
            if let stalled = progress[node]?.stalledTicks, stalled > 2 * settings.electionTick {
                progress[node]?.becomeProbe()
                sendAppend(to: node, sendIfEmpty: true)
            }
        }
        if heartbeatElapsed >= settings.heartbeatTick {
            heartbeatElapsed = 0
            broadcastHeartbeat()
        }
    }

    // MARK: - Messages

    mutating func send(to node: NodeID, _ body: RaftMessage.Body) {
        messages.append(RaftMessage(from: id, to: node, term: term, body: body))
    }

    mutating func stepInternal(_ m: RaftMessage) {
        if m.term > term {
            switch m.body {
            case .vote(let request):
                let inLease = settings.checkQuorum && ticks - leaderContact < settings.electionTick
                if inLease && !request.transfer {
                    // Heard from a leader recently: ignore the disruptive (pre-)vote (thesis §4.2.3).
                    return
                }
                if !request.preVote { becomeFollower(term: m.term, leader: noNode) }
            case .voteResponse(let granted, let preVote) where preVote && granted:
                break  // a granted pre-vote carries the term we would campaign in
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: noNode)
            }
        } else if m.term < term {
            switch m.body {
            case .append, .heartbeat:
                if settings.checkQuorum || settings.preVote {
                    // A stale leader (or our term advanced in a partition): tell it our term.
                    send(to: m.from, .appendResponse(AppendResponse(rejected: false, index: 0)))
                }
            case .vote(let request):
                if request.preVote { send(to: m.from, .voteResponse(granted: false, preVote: true)) }
            default:
                break
            }
            return
        }

        if case .vote(let request) = m.body {
            handleVote(m, request)
            return
        }
        switch role {
        case .leader: stepLeader(m)
        case .preCandidate, .candidate: stepCandidate(m)
        case .follower: stepFollower(m)
        }
    }

    mutating func handleVote(_ m: RaftMessage, _ request: VoteRequest) {
        let canVote =
            vote == m.from || (vote == noNode && leader == noNode) || (request.preVote && m.term > term)
        if canVote && log.isUpToDate(lastIndex: request.lastIndex, lastTerm: request.lastTerm) {
            messages.append(
                RaftMessage(
                    from: id, to: m.from, term: m.term, body: .voteResponse(granted: true, preVote: request.preVote))
            )
            if !request.preVote {
                electionElapsed = 0
                vote = m.from
            }
        } else {
            send(to: m.from, .voteResponse(granted: false, preVote: request.preVote))
        }
    }

    mutating func stepCandidate(_ m: RaftMessage) {
        switch m.body {
        case .append, .heartbeat, .snapshot:
            becomeFollower(term: m.term, leader: m.from)
            stepFollower(m)
        case .voteResponse(let granted, let preVote):
            let expected = role == .preCandidate ? term + 1 : term
            guard preVote == (role == .preCandidate), m.term == expected || !granted else { return }
            guard configuration.voters.contains(m.from), votes[m.from] == nil else { return }
            votes[m.from] = granted
            if grantedVotes() >= quorum {
                if role == .preCandidate { runElection(transfer: false) } else { becomeLeader() }
            } else if rejectedVotes() >= quorum {
                becomeFollower(term: term, leader: noNode)
            }
        default:
            break
        }
    }

    mutating func stepFollower(_ m: RaftMessage) {
        switch m.body {
        case .append, .heartbeat, .snapshot: leaderContact = ticks
        default: break
        }
        switch m.body {
        case .append(let request):
            electionElapsed = 0
            leader = m.from
            handleAppend(from: m.from, request)
        case .heartbeat(let commit, let sequence):
            electionElapsed = 0
            leader = m.from
            log.commitTo(min(commit, log.lastIndex))
            send(to: m.from, .heartbeatResponse(readSequence: sequence))
        case .snapshot(let chunk):
            electionElapsed = 0
            leader = m.from
            handleSnapshotChunk(from: m.from, chunk)
        case .timeoutNow:
            startCampaign(transfer: true)
        case .readIndexResponse(let context, let index):
            readStates.append(ReadState(index: index, context: context))
        default:
            break
        }
    }

    mutating func handleAppend(from node: NodeID, _ request: AppendRequest) {
        // Malformed appends (entries not contiguous after prevIndex, or from a future term) are dropped.
        guard request.prevIndex < UInt64.max / 2 else { return }
        for (offset, entry) in request.entries.enumerated() {
            guard entry.index == request.prevIndex + 1 + UInt64(offset), entry.term <= term else { return }
        }
        if request.prevIndex < log.committed {
            send(to: node, .appendResponse(AppendResponse(rejected: false, index: log.committed)))
            return
        }
        let matches =
            log.matchTerm(request.prevIndex, request.prevTerm)
            || (settings.testingSkipLogMatchingCheck && request.prevIndex <= log.lastIndex)
        guard matches else {
            let probe = log.findConflictByTerm(index: min(request.prevIndex, log.lastIndex), term: request.prevTerm)
            send(
                to: node,
                .appendResponse(
                    AppendResponse(
                        rejected: true, index: request.prevIndex, hintIndex: probe.index, hintTerm: probe.term)
                )
            )
            return
        }
        let lastNew = request.prevIndex + UInt64(request.entries.count)
        let conflict = log.findConflict(request.entries)
        if conflict != 0 {
            guard conflict > log.committed else { return }  // would overwrite committed entries: drop
            let start = Int(conflict - request.entries[0].index)
            let newEntries = Array(request.entries[start...])
            let truncates = conflict <= log.lastIndex
            log.append(newEntries)
            if truncates && conflict <= configurationIndex {
                recomputeConfiguration()
            } else {
                for entry in newEntries where entry.kind == .configuration {
                    if let config = Configuration.decode(entry.payload) {
                        setConfiguration(config, index: entry.index)
                    }
                }
            }
        }
        log.commitTo(min(request.commit, lastNew))
        send(to: node, .appendResponse(AppendResponse(rejected: false, index: lastNew)))
    }

    mutating func handleSnapshotChunk(from node: NodeID, _ chunk: SnapshotChunk) {
        let meta = chunk.metadata
        guard meta.index < UInt64.max / 2, meta.term <= term, chunk.offset >= 0,
            chunk.offset <= Int.max / 2, chunk.data.count <= Int.max / 2
        else { return }
        if chunk.offset == 0 {
            incomingSnapshot = Snapshot(metadata: meta, data: chunk.data)
        } else if var incoming = incomingSnapshot, incoming.metadata == meta {
            if chunk.offset + chunk.data.count <= incoming.data.count { return }  // duplicate
            guard chunk.offset == incoming.data.count else {
                send(to: node, .snapshotResponse(snapshotIndex: meta.index, nextOffset: 0, rejected: true))
                return
            }
            incomingSnapshot = nil
            incoming.data.append(contentsOf: chunk.data)
            incomingSnapshot = incoming
        } else {
            send(to: node, .snapshotResponse(snapshotIndex: meta.index, nextOffset: 0, rejected: true))
            return
        }
        guard chunk.done, let snapshot = incomingSnapshot else {
            let received = incomingSnapshot?.data.count ?? 0
            send(to: node, .snapshotResponse(snapshotIndex: meta.index, nextOffset: received, rejected: false))
            return
        }
        incomingSnapshot = nil
        if meta.index <= log.committed {
            send(to: node, .appendResponse(AppendResponse(rejected: false, index: log.committed)))
            return
        }
        if log.matchTerm(meta.index, meta.term) {
            // The log already contains the snapshot's last entry: fast-forward the commit index.
            log.commitTo(meta.index)
            send(to: node, .appendResponse(AppendResponse(rejected: false, index: log.committed)))
            return
        }
        log.restore(snapshot)
        setConfiguration(meta.configuration, index: meta.index)
        send(to: node, .appendResponse(AppendResponse(rejected: false, index: log.lastIndex)))
    }

    // MARK: - Leader

    mutating func stepLeader(_ m: RaftMessage) {
        switch m.body {
        case .appendResponse(let response):
            // An acknowledgement beyond our log cannot come from a correct follower: drop it.
            guard var pr = progress[m.from], response.index <= log.lastIndex else { return }
            pr.recentActive = true
            if response.rejected {
                let hint = min(response.hintIndex, log.lastIndex)
                let probe: UInt64 =
                    response.hintTerm > 0 ? log.findConflictByTerm(index: hint, term: response.hintTerm).index : hint
                if pr.maybeDecrease(rejected: response.index, matchHint: probe) {
                    if pr.state == .replicate { pr.becomeProbe() }
                    progress[m.from] = pr
                    sendAppend(to: m.from, sendIfEmpty: true)
                } else {
                    progress[m.from] = pr
                }
                return
            }
            let wasPaused = pr.isPaused(settings: settings)
            let updated = pr.maybeUpdate(response.index)
            if updated || (pr.state == .probe && pr.match == response.index) {
                switch pr.state {
                case .probe: pr.becomeReplicate()
                case .snapshot:
                    if pr.match >= pr.snapshotIndex {
                        pr.becomeProbe()
                        pr.becomeReplicate()
                    }
                case .replicate: break
                }
            }
            progress[m.from] = pr
            if updated && maybeCommit() {
                afterCommitAdvanced()
            } else if wasPaused {
                // It may have missed the latest commit index while paused.
                sendAppend(to: m.from, sendIfEmpty: true)
            }
            fillPipeline(to: m.from)
            if m.from == transferee && progress[m.from]?.match == log.lastIndex {
                send(to: m.from, .timeoutNow)
            }
        case .heartbeatResponse(let sequence):
            guard var pr = progress[m.from] else { return }
            pr.recentActive = true
            pr.probeSent = false
            if pr.state == .replicate && pr.isPaused(settings: settings) { pr.freeFirstInflight() }
            pr.readAck = max(pr.readAck, sequence)
            progress[m.from] = pr
            if pr.match < log.lastIndex { sendAppend(to: m.from, sendIfEmpty: true) }
            if configuration.voters.contains(m.from) { releaseConfirmedReads() }
        case .snapshotResponse(let index, let nextOffset, let rejected):
            guard var pr = progress[m.from] else { return }
            pr.recentActive = true
            guard pr.state == .snapshot, pr.snapshotIndex == index else {
                progress[m.from] = pr
                return
            }
            if rejected {
                pr.becomeProbe()
                progress[m.from] = pr
                sendAppend(to: m.from, sendIfEmpty: true)
                return
            }
            pr.stalledTicks = 0
            pr.snapshotChunkInFlight = false
            pr.snapshotOffset = max(0, nextOffset)
            progress[m.from] = pr
            sendSnapshotChunk(to: m.from)
        case .readIndex(let context):
            handleReadRequest(context: context, from: m.from)
        default:
            break
        }
    }

    mutating func appendAsLeader(_ entries: [Entry]) {
        log.append(entries)
        for entry in entries where entry.kind == .configuration {
            if let config = Configuration.decode(entry.payload) {
                setConfiguration(config, index: entry.index)
                pendingConfigurationIndex = entry.index
            }
        }
        // The leader counts itself only once its own entries are durable (see advance()).
        broadcastAppend()
    }

    /// Sends each follower what it lacks; a follower that lacks nothing gets an empty append (carrying the commit
    /// index) only when `sendIfEmpty`.
    mutating func broadcastAppend(sendIfEmpty: Bool = true) {
        for node in progress.keys.sorted() {
            sendAppend(to: node, sendIfEmpty: sendIfEmpty)
            fillPipeline(to: node)
        }
    }

    mutating func fillPipeline(to node: NodeID) {
        var guardCount = 0
        while progress[node]?.state == .replicate, guardCount < settings.maxInflightMessages,
            sendAppend(to: node, sendIfEmpty: false)
        {
            guardCount += 1
        }
    }

    @discardableResult
    mutating func sendAppend(to node: NodeID, sendIfEmpty: Bool) -> Bool {
        guard var pr = progress[node], !pr.isPaused(settings: settings) else { return false }
        let prevIndex = pr.next - 1
        guard let prevTerm = log.term(at: prevIndex),
            let entries = log.entries(from: pr.next, to: log.lastIndex + 1, maxBytes: settings.maxSizePerMessage)
        else {
            sendSnapshot(to: node)
            return false
        }
        if entries.isEmpty && !sendIfEmpty { return false }
        var bytes = 0
        for entry in entries { bytes += entry.byteSize }
        let request = AppendRequest(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: log.committed)
        send(to: node, .append(request))
        switch pr.state {
        case .replicate:
            if let last = entries.last {
                pr.next = last.index + 1
                pr.inflight.append((last.index, bytes))
                pr.inflightBytes += bytes
            }
        case .probe:
            pr.probeSent = true
        case .snapshot:
            break
        }
        progress[node] = pr
        return true
    }

    mutating func sendSnapshot(to node: NodeID) {
        guard var pr = progress[node] else { return }
        pr.becomeSnapshot(index: log.storage.snapshotMetadata.index)
        progress[node] = pr
        sendSnapshotChunk(to: node)
    }

    mutating func sendSnapshotChunk(to node: NodeID) {
        guard var pr = progress[node], pr.state == .snapshot else { return }
        let meta = log.storage.snapshotMetadata
        if meta.index != pr.snapshotIndex {
            pr.becomeSnapshot(index: meta.index)
        }
        let (data, done) = log.storage.snapshotChunk(offset: pr.snapshotOffset, maxBytes: settings.snapshotChunkBytes)
        send(to: node, .snapshot(SnapshotChunk(metadata: meta, offset: pr.snapshotOffset, data: data, done: done)))
        pr.snapshotChunkInFlight = true
        progress[node] = pr
    }

    mutating func broadcastHeartbeat() {
        // Every round gets a fresh sequence: acknowledgements confirm leadership as of the time it was sent.
        let sequence = nextReadSequence
        nextReadSequence += 1
        lastReadSequenceSent = sequence
        roundSentAt[Int(sequence % 64)] = ticks
        for node in progress.keys.sorted() {
            let match = progress[node]?.match ?? 0
            send(to: node, .heartbeat(commit: min(log.committed, match), readSequence: sequence))
        }
    }

    /// Recomputes the commit index from the voters' match indexes; only an entry of the current term is committed
    /// by counting (§5.4.2).
    mutating func maybeCommit() -> Bool {
        let voters = configuration.voters
        guard !voters.isEmpty else { return false }
        var matches: [UInt64] = []
        matches.reserveCapacity(voters.count)
        for node in voters {
            if node == id {
                matches.append(log.stableLastIndex)
            } else {
                matches.append(progress[node]?.match ?? 0)
            }
        }
        matches.sort(by: >)
        let candidate = matches[quorum - 1]
        guard candidate > log.committed, log.term(at: candidate) == term else { return false }
        log.commitTo(candidate)
        return true
    }

    mutating func afterCommitAdvanced() {
        // While entries past the new commit index are still being replicated, each follower learns the index from
        // the next append that carries entries, or from the empty append sent when the last of them commits
        // (heartbeats carry it too). Under load this saves every follower one exchange per commit.
        broadcastAppend(sendIfEmpty: log.committed >= log.lastIndex)
        if log.term(at: log.committed) == term && !readsAwaitingCommit.isEmpty {
            let waiting = readsAwaitingCommit
            readsAwaitingCommit = []
            for read in waiting { handleReadRequest(context: read.context, from: read.from) }
        }
        if !configuration.voters.contains(id) && log.committed >= configurationIndex {
            // The configuration that removes this leader is committed: hand over and step down.
            if let successor = configuration.voters.sorted().first(where: { progress[$0]?.match == log.lastIndex }) {
                send(to: successor, .timeoutNow)
            }
            becomeFollower(term: term, leader: noNode)
        }
    }

    // MARK: - Reads

    mutating func handleReadRequest(context: [UInt8], from node: NodeID) {
        guard log.term(at: log.committed) == term else {
            // A new leader does not know the commit index until its no-op commits (§6.4).
            readsAwaitingCommit.append((context, node))
            return
        }
        if configuration.voters == [id] || (settings.readOnlyOption == .leaseBased && leaseIsValid) {
            respondToRead(context: context, from: node, index: log.committed)
            return
        }
        pendingReads.append(PendingRead(context: context, from: node, index: log.committed, sequence: nextReadSequence))
        readRoundPending = true
    }

    mutating func flushReadRound() {
        guard role == .leader, readRoundPending else { return }
        readRoundPending = false
        broadcastHeartbeat()
        releaseConfirmedReads()
    }

    /// The latest heartbeat round a quorum of voters acknowledged.
    var quorumConfirmedRound: UInt64 {
        guard !configuration.voters.isEmpty else { return 0 }
        var acks: [UInt64] = []
        for node in configuration.voters {
            acks.append(node == id ? lastReadSequenceSent : (progress[node]?.readAck ?? 0))
        }
        acks.sort(by: >)
        return acks[quorum - 1]
    }

    /// The leader lease: a quorum acknowledged a heartbeat sent less than `electionTick - 1` ticks ago, so none of
    /// them will vote for another candidate yet (check-quorum). Assumes tick rates do not drift apart by more than
    /// one tick per election timeout.
    var leaseIsValid: Bool {
        guard role == .leader, settings.checkQuorum, !leaseRevoked, transferee == noNode else { return false }
        let round = quorumConfirmedRound
        guard round > 0, lastReadSequenceSent - round < 64 else { return false }
        return ticks - roundSentAt[Int(round % 64)] < settings.electionTick - 1
    }

    mutating func releaseConfirmedReads() {
        guard let first = pendingReads.first else { return }
        let confirmed = quorumConfirmedRound
        guard first.sequence <= confirmed else { return }
        var released = 0
        for read in pendingReads {
            guard read.sequence <= confirmed else { break }
            respondToRead(context: read.context, from: read.from, index: read.index)
            released += 1
        }
        pendingReads.removeFirst(released)
    }

    mutating func respondToRead(context: [UInt8], from node: NodeID, index: UInt64) {
        if node == id {
            readStates.append(ReadState(index: index, context: context))
        } else {
            send(to: node, .readIndexResponse(context: context, index: index))
        }
    }

    // MARK: - Configuration

    mutating func setConfiguration(_ config: Configuration, index: UInt64) {
        configuration = config
        configurationIndex = index
        guard role == .leader else { return }
        for node in config.members where node != id && progress[node] == nil {
            var pr = Progress(next: log.lastIndex + 1)
            pr.recentActive = true
            progress[node] = pr
        }
        for node in Array(progress.keys) where !config.members.contains(node) {
            progress[node] = nil
        }
        if transferee != noNode && !config.voters.contains(transferee) {
            transferee = noNode
        }
    }

    /// The configuration in effect at `index`: the latest configuration entry at or before it, else the snapshot's.
    func configuration(at index: UInt64) -> Configuration {
        // The latest configuration in the log holds from its entry on: no need to read the log back (which, for a
        // node whose log is on disk, would mean reading every entry since the snapshot).
        if configurationIndex <= index { return configuration }
        var found: Configuration?
        var lo = log.firstIndex
        while lo <= index, let batch = log.entries(from: lo, to: index + 1, maxBytes: 1 << 22), !batch.isEmpty {
            for entry in batch where entry.kind == .configuration {
                if let config = Configuration.decode(entry.payload) { found = config }
            }
            lo = batch[batch.count - 1].index + 1
        }
        if let found { return found }
        if let snap = log.unstableSnapshot { return snap.metadata.configuration }
        return log.storage.snapshotMetadata.configuration
    }

    mutating func recomputeConfiguration() {
        var config: Configuration
        var index: UInt64
        if let snap = log.unstableSnapshot {
            config = snap.metadata.configuration
            index = snap.metadata.index
        } else {
            config = log.storage.snapshotMetadata.configuration
            index = log.storage.snapshotMetadata.index
        }
        var lo = log.firstIndex
        let last = log.lastIndex
        while lo <= last, let batch = log.entries(from: lo, to: last + 1, maxBytes: 1 << 22), !batch.isEmpty {
            for entry in batch where entry.kind == .configuration {
                if let decoded = Configuration.decode(entry.payload) {
                    config = decoded
                    index = entry.index
                }
            }
            lo = batch[batch.count - 1].index + 1
        }
        setConfiguration(config, index: index)
    }
}
