import BifrostRPC
import BifrostWire
import Logging
import NIOCore
import Synchronization

/// The client of one Raft group: finds the leader, retries and fails over within a deadline, makes commands
/// exactly-once with a client session, and serves reads at the four ``ReadConsistency`` levels.
///
/// Many tasks may share one client; their operations run concurrently.
///
/// - **Discovery.** The client starts from its seed addresses and learns more from ``RaftClusterInfo`` replies
///   (voters and learners with addresses) and from `notLeader` replies (their leader hint). It never forgets an
///   address; an address that no longer answers costs one fast `unavailable` per round.
/// - **Retries.** Commands, `linearizable` and `lease` queries and membership changes go to the leader the
///   client believes in (else to the known nodes in turn). A `notLeader` hint is followed at once. `noLeader`,
///   `busy`, `timeout` and an unreachable or silent node make the client try the next known node; once every
///   known node has failed in a round (and always after `noLeader`, `busy` or `timeout`), it first waits a
///   jittered, exponential, capped backoff. Each attempt is bounded by
///   ``RaftClientConfiguration/attemptTimeout`` and the whole operation by ``RaftClientConfiguration/deadline``.
/// - **Exactly-once.** With ``RaftClientConfiguration/useSession`` the first command opens a session; every
///   command gets the next sequence number, and every retry of it reuses that number, so the cluster applies it
///   once and answers retries with the first result. When the session expires, the command fails with
///   ``RaftClientError/Code/sessionExpired`` (it may or may not have been applied) and the next command opens
///   a new session.
/// - **Reads.** Every successful reply raises ``highestSeenIndex``; `sequential` reads ask for at least that
///   index, so a client never reads older state than it has already seen.
///
/// Cancelling the calling task ends an operation at once with an error whose code is
/// ``RaftClientError/Code/timeout`` (its message says it was cancelled): like a timeout, the command may or may
/// not have been applied.
public final class RaftClient: Sendable {
    let configuration: RaftClientConfiguration
    let rpc: RPCClient
    private let ownsRPC: Bool
    let logger: Logger
    let service: UInt64
    private let state: Mutex<State>
    let seenIndex = RaftReplyIndex()
    /// Gathers completion-handler commands into ``RaftServiceFunction/commands`` calls.
    let batcher: RaftCommandBatcher
    /// ``RaftClientConfiguration/preferredNode``, normalized.
    private let preferred: String?

    /// Creates a client of the group ``RaftClientConfiguration/group``. It contacts no node until the first
    /// operation.
    ///
    /// - Parameters:
    ///   - seeds: addresses (`host:port` or `[v6]:port`) of some members of the group; one reachable member is
    ///     enough. Addresses that do not parse are logged and ignored.
    ///   - rpc: the RPC client to call through; `nil` makes the client create one of its own, which ``close()``
    ///     shuts down.
    public init(
        seeds: [String],
        configuration: RaftClientConfiguration = RaftClientConfiguration(),
        rpc: RPCClient? = nil,
        logger: Logger = Logger(label: "bifrost.raft.client")
    ) {
        self.configuration = configuration
        self.ownsRPC = rpc == nil
        self.rpc = rpc ?? RPCClient()
        self.logger = logger
        self.service = RaftServiceID.forGroup(configuration.group)
        self.batcher = RaftCommandBatcher(rpc: self.rpc, service: service)
        self.preferred = configuration.preferredNode.flatMap(Self.normalize)
        var initial = State()
        for seed in seeds {
            if let address = Self.normalize(seed) {
                if !initial.addresses.contains(address) { initial.addresses.append(address) }
            } else {
                logger.warning("ignoring a seed address that does not parse", metadata: ["seed": "\(seed)"])
            }
        }
        self.state = Mutex(initial)
    }

    // MARK: Public API

    /// Runs a command on state machine `stateMachine` through the leader, and returns its result and log index.
    ///
    /// With a session (the default) the command is applied exactly once, however often it is retried.
    ///
    /// - Throws: ``RaftClientError``: the state machine's own errors (`applicationError`, `functionNotFound`,
    ///   `stateMachineNotFound`), `sessionExpired`, or `timeout` / `unavailable` when the deadline passed.
    public func command(
        stateMachine: UInt64,
        function: UInt64,
        argument: [UInt8]
    ) async throws(RaftClientError) -> (value: [UInt8], index: UInt64) {
        let deadline = ContinuousClock.now + configuration.deadline
        try checkNotClosed()
        guard configuration.useSession else {
            let request = RaftCommandRequest(
                session: 0, sequence: 0, acknowledged: 0, stateMachine: stateMachine, function: function,
                argument: argument)
            return try await run(
                "command", routing: .leader, function: RaftServiceFunction.command, retriesAmbiguous: false,
                deadline: deadline
            ) { (request.encoded, 0) }
        }
        let (session, sequence) = try await nextSequence(deadline: deadline)
        return try await runCommand(
            session: session, sequence: sequence, stateMachine: stateMachine, function: function, argument: argument,
            deadline: deadline)
    }

    /// Runs command `sequence` of `session` until it succeeds for good or fails, then counts it as complete.
    func runCommand(
        session: UInt64, sequence: UInt64, stateMachine: UInt64, function: UInt64, argument: [UInt8],
        deadline: ContinuousClock.Instant
    ) async throws(RaftClientError) -> (value: [UInt8], index: UInt64) {
        // Whatever the outcome, the client will never ask for this result again: count it as received, so that
        // `acknowledged` lets the cluster discard it (an abandoned command is then never applied late).
        defer { complete(sequence, in: session) }
        do {
            return try await run(
                "command", routing: .leader, function: RaftServiceFunction.command, retriesAmbiguous: true,
                deadline: deadline
            ) {
                let request = RaftCommandRequest(
                    session: session, sequence: sequence, acknowledged: acknowledged(in: session),
                    stateMachine: stateMachine, function: function, argument: argument)
                return (request.encoded, 0)
            }
        } catch {
            if error.code == .sessionExpired { expire(session) }
            throw error
        }
    }

    /// Runs a read-only query on state machine `stateMachine` and returns its result and the applied index it was
    /// served at.
    ///
    /// `linearizable` and `lease` queries go to the leader (`linearizable` ones to any node with
    /// ``RaftClientConfiguration/linearizableReadsOnFollowers``); `sequential` and `stale` ones to any node, spread
    /// over the known nodes. A `sequential` query is never answered from state older than ``highestSeenIndex``:
    /// a node that is behind (a `staleRead` reply, or a reply at a lower index) makes the client try another.
    public func query(
        stateMachine: UInt64,
        function: UInt64,
        argument: [UInt8],
        consistency: ReadConsistency = .linearizable
    ) async throws(RaftClientError) -> (value: [UInt8], index: UInt64) {
        let deadline = ContinuousClock.now + configuration.deadline
        try checkNotClosed()
        let routing = routing(of: consistency)
        return try await run(
            "\(consistency) query", routing: routing, function: RaftServiceFunction.query, retriesAmbiguous: true,
            deadline: deadline
        ) { queryRequest(stateMachine: stateMachine, function: function, argument: argument, consistency: consistency) }
    }

    /// Where a query at `consistency` goes.
    func routing(of consistency: ReadConsistency) -> Routing {
        switch consistency {
        case .lease: .leader
        case .linearizable: configuration.linearizableReadsOnFollowers ? .anyNode : .leader
        case .sequential, .stale: .anyNode
        }
    }

    /// One attempt's payload for a query, and the lowest index its reply may carry.
    func queryRequest(
        stateMachine: UInt64, function: UInt64, argument: [UInt8], consistency: ReadConsistency
    ) -> (payload: ByteBuffer, minIndex: UInt64) {
        let minIndex = consistency == .sequential ? highestSeenIndex : 0
        let request = RaftQueryRequest(
            consistency: consistency, minIndex: minIndex, stateMachine: stateMachine, function: function,
            argument: argument)
        return (Wire.encode(request), minIndex)
    }

    /// The cluster as the leader sees it when the leader can be reached, else as any reachable node sees it.
    ///
    /// The addresses of the reply's voters, learners and leader are added to the known nodes.
    ///
    /// - Throws: ``RaftClientError`` with `unavailable` (or `timeout`) when no node answered within the deadline.
    public func clusterInfo() async throws(RaftClientError) -> RaftClusterInfo {
        let deadline = ContinuousClock.now + configuration.deadline
        try checkNotClosed()
        var backoffs = 0
        var tried: [String] = []
        var lastError: RaftClientError?
        while true {
            try checkCancelled("cluster info", tried: tried, lastError: lastError)
            var fallback: RaftClusterInfo?
            var round: Set<String> = []
            while let address = pick(.leader, avoiding: round) {
                round.insert(address)
                if !tried.contains(address) { tried.append(address) }
                guard let timeout = attemptBudget(deadline) else { break }
                do {
                    let info = try await fetchInfo(at: address, timeout: timeout)
                    if info.role == "leader" { return info }
                    fallback = fallback ?? info
                    // The node named a leader: it is the next `pick` unless it was tried already.
                    if let leader = info.leader.flatMap({ Self.normalize($0.address) }), round.contains(leader) {
                        return info
                    }
                } catch {
                    if Task.isCancelled { throw error }
                    lastError = error
                    // The leader a node named did not answer: that node's view will do.
                    if fallback != nil { break }
                }
            }
            if let fallback { return fallback }
            guard
                try await backOff(
                    &backoffs, deadline: deadline, operation: "cluster info", tried: tried, lastError: lastError)
            else {
                throw giveUp("cluster info", tried: tried, lastError: lastError, unreachable: true)
            }
        }
    }

    /// What the node at `address` reports, in one attempt (bounded by
    /// ``RaftClientConfiguration/attemptTimeout``). The addresses it names are added to the known nodes.
    public func info(at address: String) async throws(RaftClientError) -> RaftClusterInfo {
        try checkNotClosed()
        guard let normalized = Self.normalize(address) else {
            throw RaftClientError(code: .invalidRequest, message: "'\(address)' is not a host:port address")
        }
        return try await fetchInfo(at: normalized, timeout: min(configuration.attemptTimeout, configuration.deadline))
    }

    /// Asks the leader to change the membership, retrying (and failing over) within the deadline.
    ///
    /// A retry after an attempt whose outcome is unknown may find the change already made; the leader then
    /// answers as it sees fit (for example `invalidRequest` for a node that is already a member).
    public func changeMembership(_ request: RaftMembershipRequest) async throws(RaftClientError) {
        let deadline = ContinuousClock.now + configuration.deadline
        try checkNotClosed()
        _ = try await run(
            "membership change", routing: .leader, function: RaftServiceFunction.membership, retriesAmbiguous: true,
            deadline: deadline
        ) { (Wire.encode(request), 0) }
        switch request {
        case .join(let peer), .addLearner(let peer): learn([peer.address])
        case .promote, .remove, .transferLeadership: break
        }
    }

    /// The address of the node the client currently believes to be the leader, if any.
    public var leader: String? { state.withLock { $0.leader?.text } }

    /// The addresses the client knows (seeds, then those it learned), in the order it learned them.
    public var knownAddresses: [String] { state.withLock { $0.addresses } }

    /// The highest log index the client has seen in any successful reply. It never decreases.
    public var highestSeenIndex: UInt64 { seenIndex.index }

    /// The id of the client's open session, if it has one.
    public var sessionID: UInt64? {
        state.withLock { state in
            if case .open(let session) = state.session { return session.id }
            return nil
        }
    }

    /// Closes the session (best effort: one attempt at the leader) and, if the client created its own
    /// ``RPCClient``, shuts it down. Operations started afterwards fail with `unavailable`. Safe to call more
    /// than once.
    public func close() async {
        let (wasClosed, session, opening) = state.withLock { state -> (Bool, UInt64?, Task<SessionResult, Never>?) in
            defer {
                state.closed = true
                state.session = .none
            }
            switch state.session {
            case .open(let session): return (state.closed, session.id, nil)
            case .opening(_, let task): return (state.closed, nil, task)
            case .none: return (state.closed, nil, nil)
            }
        }
        guard !wasClosed else { return }
        opening?.cancel()
        if let session, let address = pick(.leader, avoiding: []), let rpcAddress = RPCAddress(address) {
            do {
                _ = try await rpc.call(
                    rpcAddress, service: service, function: RaftServiceFunction.closeSession,
                    payload: Wire.encode(session), timeout: configuration.attemptTimeout)
            } catch {
                logger.debug("closing the session failed", metadata: ["session": "\(session)", "error": "\(error)"])
            }
        }
        if ownsRPC { await rpc.shutdown() }
    }

    // MARK: State

    private struct State {
        var addresses: [String] = []
        /// The believed leader, as text (`host:port`, normalized) and parsed: the completion-handler calls use the
        /// parsed form on every call. One value, so the two cannot disagree.
        var leader: (text: String, address: RPCAddress)?
        var cursor = 0
        var session: SessionState = .none
        var sessionGeneration: UInt64 = 0
        var closed = false
    }

    private typealias SessionResult = Result<UInt64, RaftClientError>

    private enum SessionState {
        case none
        /// A session is being opened by `task` (shared by every command waiting for it).
        case opening(generation: UInt64, task: Task<SessionResult, Never>)
        case open(Session)
    }

    private struct Session {
        var id: UInt64
        var nextSequence: UInt64 = 1
        /// Every sequence number up to this one is complete.
        var acknowledged: UInt64 = 0
        /// Complete sequence numbers above ``acknowledged`` (commands that finished out of order).
        var completed: Set<UInt64> = []
    }

    enum Routing: Equatable {
        case leader
        case anyNode
    }

    /// Whether ``close()`` was called.
    var isClosed: Bool { state.withLock { $0.closed } }

    func checkNotClosed() throws(RaftClientError) {
        if isClosed {
            throw RaftClientError(code: .unavailable, message: "the Raft client is closed")
        }
    }

    /// `host:port` in canonical form, or nil when `text` does not parse.
    static func normalize(_ text: String) -> String? {
        RPCAddress(text).map(\.description)
    }

    private func learn(_ addresses: [String]) {
        let normalized = addresses.compactMap(Self.normalize)
        guard !normalized.isEmpty else { return }
        state.withLock { state in
            for address in normalized where !state.addresses.contains(address) { state.addresses.append(address) }
        }
    }

    func believeLeader(_ address: String) {
        state.withLock { state in
            if !state.addresses.contains(address) { state.addresses.append(address) }
            if state.leader?.text != address, let parsed = RPCAddress(address) { state.leader = (address, parsed) }
        }
    }

    func forgetLeader(_ address: String) {
        state.withLock { state in
            if state.leader?.text == address { state.leader = nil }
        }
    }

    /// The believed leader, parsed, if there is one.
    var leaderAddress: RPCAddress? { state.withLock { $0.leader?.address } }

    /// The next node to try: the believed leader for leader-bound requests, else the known nodes in turn
    /// (shared by all operations, which spreads reads), preferring nodes not in `avoiding`.
    func pick(_ routing: Routing, avoiding: Set<String>) -> String? {
        state.withLock { state -> String? in
            if routing == .leader, let leader = state.leader?.text, !avoiding.contains(leader) { return leader }
            if routing == .anyNode, let preferred, !avoiding.contains(preferred) { return preferred }
            let count = state.addresses.count
            guard count > 0 else { return nil }
            for offset in 0..<count {
                let index = (state.cursor + offset) % count
                if !avoiding.contains(state.addresses[index]) {
                    state.cursor = (index + 1) % count
                    return state.addresses[index]
                }
            }
            return nil
        }
    }

    // MARK: Sessions

    /// The believed leader, the open session and the next sequence number in it, without waiting: nil (and no
    /// number taken) when the client is closed, has no open session or knows no leader.
    func nextSequenceAtLeader() -> (leader: RPCAddress, session: UInt64, sequence: UInt64)? {
        state.withLock { state in
            guard !state.closed, let leader = state.leader?.address, case .open(var session) = state.session else {
                return nil
            }
            let sequence = session.nextSequence
            session.nextSequence += 1
            state.session = .open(session)
            return (leader, session.id, sequence)
        }
    }

    /// The client's session and the next sequence number in it, opening a session first if there is none.
    func nextSequence(
        deadline: ContinuousClock.Instant
    ) async throws(RaftClientError) -> (session: UInt64, sequence: UInt64) {
        enum Step {
            case ready(UInt64, UInt64)
            case wait(Task<SessionResult, Never>)
            case closed
        }
        while true {
            let step = state.withLock { state -> Step in
                if state.closed { return .closed }
                switch state.session {
                case .open(var session):
                    let sequence = session.nextSequence
                    session.nextSequence += 1
                    state.session = .open(session)
                    return .ready(session.id, sequence)
                case .opening(_, let task):
                    return .wait(task)
                case .none:
                    state.sessionGeneration += 1
                    let generation = state.sessionGeneration
                    // The task is shared by every command that finds the session opening; it is bounded by the
                    // deadline of the command that started it.
                    let task = Task { await self.openSession(generation: generation, deadline: deadline) }
                    state.session = .opening(generation: generation, task: task)
                    return .wait(task)
                }
            }
            switch step {
            case .ready(let session, let sequence):
                return (session, sequence)
            case .closed:
                throw RaftClientError(code: .unavailable, message: "the Raft client is closed")
            case .wait(let task):
                if case .failure(let error) = await Self.value(of: task) { throw error }
                try checkCancelled("command", tried: [], lastError: nil)
                if ContinuousClock.now >= deadline {
                    throw RaftClientError(
                        code: .timeout, message: "command: no session could be opened within \(configuration.deadline)")
                }
            }
        }
    }

    private func openSession(generation: UInt64, deadline: ContinuousClock.Instant) async -> SessionResult {
        var result: SessionResult
        do {
            let reply = try await run(
                "open session", routing: .leader, function: RaftServiceFunction.openSession, retriesAmbiguous: true,
                deadline: deadline
            ) { (ByteBuffer(), 0) }
            do {
                let id = try Wire.decode(UInt64.self, fromBytes: reply.value)
                result =
                    id == 0
                    ? .failure(RaftClientError(code: .unknown, message: "the leader opened session 0 (reserved)"))
                    : .success(id)
            } catch {
                result = .failure(
                    RaftClientError(code: .unknown, message: "malformed session id from the leader: \(error.message)"))
            }
        } catch {
            result = .failure(error)
        }
        state.withLock { state in
            guard case .opening(let current, _) = state.session, current == generation else { return }
            switch result {
            case .success(let id): state.session = .open(Session(id: id))
            case .failure: state.session = .none
            }
        }
        if case .success(let id) = result { logger.debug("opened a session", metadata: ["session": "\(id)"]) }
        return result
    }

    /// The value of `task`, or a cancellation error as soon as the calling task is cancelled (the shared task
    /// keeps running for the other commands that wait for it).
    private static func value(of task: Task<SessionResult, Never>) async -> SessionResult {
        let slot = ResultSlot()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                slot.attach(continuation)
                Task { slot.complete(await task.value) }
            }
        } onCancel: {
            slot.complete(.failure(Self.cancelled("command", tried: [], lastError: nil)))
        }
    }

    func acknowledged(in session: UInt64) -> UInt64 {
        state.withLock { state in
            if case .open(let current) = state.session, current.id == session { return current.acknowledged }
            return 0
        }
    }

    func complete(_ sequence: UInt64, in session: UInt64) {
        state.withLock { state in
            guard case .open(var current) = state.session, current.id == session else { return }
            // Leaves `current` the only holder of its set, which then changes in place instead of being copied.
            state.session = .none
            if sequence == current.acknowledged + 1 {
                current.acknowledged = sequence
            } else if sequence > current.acknowledged {
                current.completed.insert(sequence)
            }
            while current.completed.remove(current.acknowledged + 1) != nil { current.acknowledged += 1 }
            state.session = .open(current)
        }
    }

    private func expire(_ session: UInt64) {
        let expired = state.withLock { state -> Bool in
            guard case .open(let current) = state.session, current.id == session else { return false }
            state.session = .none
            return true
        }
        if expired { logger.info("the client session expired", metadata: ["session": "\(session)"]) }
    }

    // MARK: The retry loop

    /// Sends a request until a node answers it for good or the deadline passes.
    ///
    /// - Parameters:
    ///   - retriesAmbiguous: whether an attempt whose outcome is unknown (it timed out) may be retried.
    ///   - request: builds each attempt's payload (so that it carries fresh state) and the lowest index a reply
    ///     may carry (for sequential reads; 0 for none).
    func run(
        _ operation: @autoclosure () -> String,
        routing: Routing,
        function: UInt64,
        retriesAmbiguous: Bool,
        deadline: ContinuousClock.Instant,
        request: () -> (payload: ByteBuffer, minIndex: UInt64)
    ) async throws(RaftClientError) -> (value: [UInt8], index: UInt64) {
        var tried: [String] = []
        var lastError: RaftClientError?
        var unreachable = true
        var round: Set<String> = []
        var redirect: String?
        var hops = 0
        var backoffs = 0
        var attempts = 0
        while true {
            if Task.isCancelled { throw Self.cancelled(operation(), tried: tried, lastError: lastError) }
            guard let timeout = attemptBudget(deadline) else {
                throw giveUp(operation(), tried: tried, lastError: lastError, unreachable: unreachable)
            }
            var target = redirect ?? pick(routing, avoiding: round) ?? pick(routing, avoiding: [])
            if redirect == nil, routing == .leader, function == RaftServiceFunction.query, let candidate = target,
                leader == nil
            {
                // A follower serves a linearizable or lease query itself (with a ReadIndex round through the
                // leader), so a successful query does not say who leads. Ask first, so that leader-bound queries
                // do not all take the detour through whichever node was tried first.
                if (try? await fetchInfo(at: candidate, timeout: timeout)) != nil, let leader, !round.contains(leader) {
                    target = leader
                }
            }
            redirect = nil
            guard let address = target, let rpcAddress = RPCAddress(address) else {
                throw RaftClientError(code: .unavailable, message: "\(operation()): the client knows no node address")
            }
            if !tried.contains(address) { tried.append(address) }
            attempts += 1
            let (payload, minIndex) = request()

            // One attempt; `next` says what to do with its outcome.
            enum Next {
                case retryNow
                case retryAfterBackoff
            }
            let next: Next
            do {
                let buffer = try await rpc.call(
                    rpcAddress, service: service, function: function, payload: payload, timeout: timeout)
                unreachable = false
                let reply: RaftReply
                do {
                    reply = try Wire.decode(RaftReply.self, from: buffer)
                } catch {
                    throw RaftClientError(
                        code: .unknown, message: "\(operation()): malformed reply from \(address): \(error.message)")
                }
                switch reply {
                case .ok(let value, let index):
                    if index < minIndex {
                        // A node that ignored `minIndex`: its state is older than what the client has seen.
                        lastError = RaftClientError(
                            code: .staleRead, message: "\(address) answered at index \(index) < \(minIndex)")
                        round.insert(address)
                        next = hasUntried(round) ? .retryNow : .retryAfterBackoff
                    } else {
                        // Only a command's success proves the node leads (a follower may serve a query).
                        if routing == .leader, function != RaftServiceFunction.query { believeLeader(address) }
                        seenIndex.record(index)
                        Self.replyIndex?.record(index)
                        return (value, index)
                    }
                case .failure(let error):
                    lastError = error
                    switch error.code {
                    case .notLeader:
                        forgetLeader(address)
                        round.insert(address)
                        if let hint = error.leaderHint.flatMap({ Self.normalize($0.address) }), hint != address {
                            believeLeader(hint)
                            hops += 1
                            // Follow hints at once, but not for ever: nodes naming each other back and forth
                            // (a stale view during an election) get a backoff.
                            if hops <= state.withLock({ $0.addresses.count }) + 1 {
                                redirect = hint
                                next = .retryNow
                            } else {
                                next = .retryAfterBackoff
                            }
                        } else {
                            next = .retryAfterBackoff
                        }
                    case .noLeader, .busy, .timeout, .unavailable:
                        if error.code == .timeout && !retriesAmbiguous { throw ambiguous(operation(), address, error) }
                        forgetLeader(address)
                        round.insert(address)
                        next = .retryAfterBackoff
                    case .staleRead:
                        round.insert(address)
                        next = hasUntried(round) ? .retryNow : .retryAfterBackoff
                    default:
                        throw error
                    }
                }
            } catch let error as RPCError {
                if Task.isCancelled { throw Self.cancelled(operation(), tried: tried, lastError: lastError) }
                switch error.code {
                case .unavailable, .deadlineExceeded, .serviceNotFound, .cancelled, .resourceExhausted:
                    let converted = RaftClientError(
                        code: error.code == .deadlineExceeded ? .timeout : .unavailable,
                        message: "\(address): \(error.code): \(error.message)")
                    lastError = converted
                    if error.code != .unavailable { unreachable = false }
                    if error.code == .deadlineExceeded && !retriesAmbiguous {
                        throw ambiguous(operation(), address, converted)
                    }
                    forgetLeader(address)
                    round.insert(address)
                    next = hasUntried(round) && error.code != .resourceExhausted ? .retryNow : .retryAfterBackoff
                default:
                    throw RaftClientError(
                        code: error.code == .badRequest || error.code == .functionNotFound ? .invalidRequest : .unknown,
                        message: "\(operation()) at \(address) failed: \(error)")
                }
            } catch let error as RaftClientError {
                throw error
            } catch {
                // `rpc.call` throws only RPCError, and the decoding branch only RaftClientError.
                throw RaftClientError(code: .unknown, message: "\(operation()) at \(address) failed: \(error)")
            }

            logger.debug(
                "retrying",
                metadata: [
                    "operation": "\(operation())", "address": "\(address)", "attempt": "\(attempts)",
                    "error": "\(lastError.map(String.init(describing:)) ?? "-")",
                ])
            if case .retryAfterBackoff = next {
                guard
                    try await backOff(
                        &backoffs, deadline: deadline, operation: operation(), tried: tried, lastError: lastError)
                else {
                    throw giveUp(operation(), tried: tried, lastError: lastError, unreachable: unreachable)
                }
                round.removeAll()
                hops = 0
            }
        }
    }

    private func hasUntried(_ round: Set<String>) -> Bool {
        state.withLock { state in state.addresses.contains { !round.contains($0) } }
    }

    /// The timeout of the next attempt, or nil when the deadline has passed.
    func attemptBudget(_ deadline: ContinuousClock.Instant) -> Duration? {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return nil }
        return min(configuration.attemptTimeout, left)
    }

    /// Waits the next backoff step (jittered: between half and all of `initial * 2^n`, capped at `maxBackoff`),
    /// never past the deadline. Returns false when no time is left.
    func backOff(
        _ backoffs: inout Int,
        deadline: ContinuousClock.Instant,
        operation: String,
        tried: [String],
        lastError: RaftClientError?
    ) async throws(RaftClientError) -> Bool {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return false }
        let step = configuration.initialBackoff * (1 << min(backoffs, 20))
        backoffs += 1
        let capped = min(step, configuration.maxBackoff)
        let jittered = capped * Double.random(in: 0.5...1.0)
        do {
            try await Task.sleep(for: min(jittered, left))
        } catch {
            throw Self.cancelled(operation, tried: tried, lastError: lastError)
        }
        return ContinuousClock.now < deadline
    }

    private func fetchInfo(at address: String, timeout: Duration) async throws(RaftClientError) -> RaftClusterInfo {
        guard let rpcAddress = RPCAddress(address) else {
            throw RaftClientError(code: .invalidRequest, message: "'\(address)' is not a host:port address")
        }
        let info: RaftClusterInfo
        do {
            let buffer = try await rpc.call(
                rpcAddress, service: service, function: RaftServiceFunction.info, payload: ByteBuffer(),
                timeout: timeout)
            info = try Wire.decode(RaftClusterInfo.self, from: buffer)
        } catch let error as RPCError {
            if Task.isCancelled { throw Self.cancelled("cluster info", tried: [address], lastError: nil) }
            throw RaftClientError(
                code: error.code == .deadlineExceeded ? .timeout : .unavailable,
                message: "info at \(address): \(error.code): \(error.message)")
        } catch let error as WireError {
            throw RaftClientError(code: .unknown, message: "malformed cluster info from \(address): \(error.message)")
        } catch {
            throw RaftClientError(code: .unknown, message: "info at \(address) failed: \(error)")
        }
        learn((info.voters + info.learners + [info.node]).map(\.address).filter { !$0.isEmpty })
        if let leader = info.leader, let address = Self.normalize(leader.address) {
            believeLeader(address)
        } else if info.role == "leader", let address = Self.normalize(info.node.address) {
            believeLeader(address)
        }
        return info
    }

    // MARK: Errors

    private func checkCancelled(
        _ operation: String, tried: [String], lastError: RaftClientError?
    ) throws(RaftClientError) {
        if Task.isCancelled { throw Self.cancelled(operation, tried: tried, lastError: lastError) }
    }

    private static func cancelled(_ operation: String, tried: [String], lastError: RaftClientError?) -> RaftClientError
    {
        var message = "\(operation) was cancelled (its outcome is unknown)"
        if !tried.isEmpty { message += "; tried \(tried.joined(separator: ", "))" }
        if let lastError { message += "; last error: \(lastError)" }
        return RaftClientError(code: .timeout, message: message)
    }

    private func giveUp(
        _ operation: String, tried: [String], lastError: RaftClientError?, unreachable: Bool
    ) -> RaftClientError {
        let code: RaftClientError.Code = unreachable && !tried.isEmpty ? .unavailable : .timeout
        var message = "\(operation) did not complete within \(configuration.deadline)"
        message += "; tried \(tried.isEmpty ? "no node" : tried.joined(separator: ", "))"
        message += "; last error: \(lastError.map(String.init(describing:)) ?? "none")"
        return RaftClientError(code: code, message: message)
    }

    private func ambiguous(_ operation: String, _ address: String, _ error: RaftClientError) -> RaftClientError {
        RaftClientError(
            code: .timeout,
            message: "\(operation) at \(address) timed out and may or may not have been applied; without a session "
                + "it is not retried (\(error))")
    }
}

/// A result delivered once to one waiter, by whichever comes first: the value or a cancellation.
private final class ResultSlot: Sendable {
    private enum Phase {
        case empty
        case waiting(CheckedContinuation<Result<UInt64, RaftClientError>, Never>)
        case done(Result<UInt64, RaftClientError>)
        case delivered
    }

    private let phase = Mutex(Phase.empty)

    func attach(_ continuation: CheckedContinuation<Result<UInt64, RaftClientError>, Never>) {
        let ready = phase.withLock { phase -> Result<UInt64, RaftClientError>? in
            if case .done(let result) = phase {
                phase = .delivered
                return result
            }
            phase = .waiting(continuation)
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    func complete(_ result: Result<UInt64, RaftClientError>) {
        let waiter = phase.withLock { phase -> CheckedContinuation<Result<UInt64, RaftClientError>, Never>? in
            switch phase {
            case .empty:
                phase = .done(result)
                return nil
            case .waiting(let continuation):
                phase = .delivered
                return continuation
            case .done, .delivered:
                return nil
            }
        }
        waiter?.resume(returning: result)
    }
}

// MARK: - Reply indexes

/// Collects the log index of the replies that operations of a ``RaftClient`` receive within a scope (see
/// ``RaftClient/withReplyIndex(_:)``), for callers of typed clients, whose methods return only the value.
public final class RaftReplyIndex: Sendable {
    private let highest = Atomic<UInt64>(0)

    /// Creates an empty collector.
    public init() {}

    /// The highest index recorded so far (0: none).
    public var index: UInt64 { highest.load(ordering: .acquiring) }

    /// Records a reply's index.
    public func record(_ index: UInt64) {
        var current = highest.load(ordering: .relaxed)
        while current < index {
            let (exchanged, original) = highest.compareExchange(
                expected: current, desired: index, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }
}

extension RaftClient {
    /// The collector the operations of the current task record their reply index into.
    @TaskLocal public static var replyIndex: RaftReplyIndex?

    /// Runs `body` and returns its result with the highest log index of the replies its operations received:
    /// the index a command was applied at, or the applied index a query was served at.
    ///
    /// ```swift
    /// let (value, index) = try await RaftClient.withReplyIndex { try await map.get(key: "k") }
    /// ```
    public static func withReplyIndex<Result: Sendable>(
        _ body: () async throws(RaftClientError) -> Result
    ) async throws(RaftClientError) -> (value: Result, index: UInt64) {
        let collector = RaftReplyIndex()
        let outcome: Swift.Result<Result, RaftClientError> = await $replyIndex.withValue(collector) {
            do throws(RaftClientError) {
                return .success(try await body())
            } catch {
                return .failure(error)
            }
        }
        return (try outcome.get(), collector.index)
    }
}
