import BifrostRPC
import BifrostRaftCore
import BifrostStorage
import BifrostWire
import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The event-loop-confined half of a ``RaftNode``: it owns the core, the master state machine and every waiter,
/// and runs only on `loop` (a `NIOLoopBound` in the node guarantees it). Inputs are batched: everything that
/// arrives in one loop tick (peer messages, proposals, reads) is stepped, then one pass collects the core's
/// ready batches.
///
/// The write pipeline: each ready batch becomes a ``Stage``. Messages that do not depend on durable state leave at
/// once (a leader's appends go out in parallel with its own write); the durable parts of every stage queued
/// while the disk thread is busy are merged into the next synced write (group commit). Stages finish strictly in
/// order: late messages, snapshot install, apply, reads, `advance`.
final class RaftDriver {
    let loop: any EventLoop
    let configuration: RaftNodeConfiguration
    let disk: RaftDisk
    let diskPool: NIOThreadPool
    /// Encodes and writes snapshots, so that log writes never wait behind one.
    let snapshotPool: NIOThreadPool
    let transport: RaftTransport
    let logger: Logger
    let clock: @Sendable () -> UInt64

    var core: RaftCore<RaftLogMirror>
    var master: MasterStateMachine
    /// The index the state machines have applied.
    var applied: UInt64
    var halted: String?

    struct Stage {
        var sequence: UInt64
        var ready: RaftReady
        var durable: Bool
        var writing = false
        var snapshotPayload: [UInt8]? = nil
        /// Its committed entries were applied before the stage was finished (``applyCommittedEarly()``).
        var appliedEarly = false
        /// Peers' `raft.exchange` calls answered when the stage is finished: with the stage's messages to that
        /// peer that waited for the write (an append's acknowledgement), see ``answerOwedReplies()``.
        var heldReplies: [NodeID: RPCResponder] = [:]
    }
    var nextStage: UInt64 = 0
    var pipeline: [Stage] = []
    /// Whether the disk thread is writing (the durable parts of the stages marked `writing`).
    var writeInFlight = false
    var processScheduled = false
    /// The newest commit-only hard state change not yet handed to the disk: the next log write carries its commit
    /// index. Raft needs no durable commit index (a restarted node relearns it from the leader, and a node's own log
    /// is clamped to what it holds); storing it only lets a restart apply more before it hears from the leader. So
    /// it costs no write of its own, and no wake-up of the disk thread, where each one used to take a write.
    var unsavedCommit: BifrostRaftCore.HardState?

    struct Proposal {
        /// The cluster time stamped when it was proposed.
        var time: UInt64
        var body: RaftLogCommand.Body
        var reply: RaftReplyTarget?
    }
    var proposals: [Proposal] = []
    /// When the leader proposes what it gathered (``ProposalWindow``).
    var window: ProposalWindow
    /// Counts the windows opened, so that the timer of one that closed early does nothing.
    var windowsOpened: UInt64 = 0
    /// The window whose deadline timer is set.
    var timerArmedFor: UInt64 = 0
    /// Clients waiting for the entry at an index (and term) to apply.
    var commandWaiters: [UInt64: (term: UInt64, reply: CommandWaiter)] = [:]
    /// The replies of the entry being applied (reused).
    var entryReplies: [RaftReply] = []
    /// Membership changes waiting for their configuration entry to apply.
    var configurationWaiters: [UInt64: (term: UInt64, reply: RaftReplyTarget)] = [:]

    struct Read {
        var request: RaftQueryRequest
        var reply: RaftReplyTarget
        var deadline: Int
    }
    /// Linearizable reads gathered in this loop tick; they share one ReadIndex request.
    var readBatch: [Read] = []
    var readsByContext: [UInt64: [Read]] = [:]
    /// Reads whose index is known, waiting for the state machines to apply it (sorted by index on insertion).
    var readsAwaitingApply: [(index: UInt64, read: Read)] = []
    var nextReadContext: UInt64 = 1
    var ticks = 0
    var tickTask: RepeatedTask?
    var snapshotting = false
    var snapshotRetryAt: UInt64 = 0
    var lastSnapshotBytes = 0
    var logBytesSinceSnapshot = 0
    var metrics: RaftNodeMetrics
    var hub: SubscriptionHub
    /// Peers' `raft.exchange` calls waiting for this node's answers, by peer: the messages to the peer that the
    /// next pass produces and that need no disk write ride back in the reply (see ``piggybacks(_:)``).
    var owedReplies: [NodeID: OwedReply] = [:]

    struct OwedReply {
        var responders: [RPCResponder] = []
        var messages: [RaftMessage] = []
        /// The position in `responders` of the last call that carried an append: the one whose reply may wait for
        /// the acknowledgement.
        var appendCall: Int?
    }

    init(
        loop: any EventLoop, configuration: RaftNodeConfiguration, disk: RaftDisk, diskPool: NIOThreadPool,
        snapshotPool: NIOThreadPool,
        transport: RaftTransport, core: RaftCore<RaftLogMirror>, master: MasterStateMachine, applied: UInt64,
        clock: @escaping @Sendable () -> UInt64, logger: Logger
    ) {
        self.loop = loop
        self.configuration = configuration
        self.disk = disk
        self.diskPool = diskPool
        self.snapshotPool = snapshotPool
        self.transport = transport
        self.core = core
        self.master = master
        self.applied = applied
        self.window = ProposalWindow(settings: configuration.proposalWindow)
        self.clock = clock
        self.logger = logger
        self.metrics = RaftNodeMetrics(group: configuration.group, node: configuration.node.id)
        self.hub = SubscriptionHub(
            capacity: configuration.subscriptionReplayEvents, maxBytes: configuration.subscriptionReplayBytes,
            appliedAtStart: applied)
    }

    // MARK: Inputs

    func tick() {
        guard halted == nil else { return }
        ticks += 1
        core.tick()
        expireReads()
        scheduleProcess()
    }

    func receive(_ batch: RaftPeerBatch, replyTo responder: RPCResponder?) {
        if let responder {
            var owed = owedReplies[batch.from.id] ?? OwedReply()
            if batch.messages.contains(where: \.isData) { owed.appendCall = owed.responders.count }
            owed.responders.append(responder)
            owedReplies[batch.from.id] = owed
        }
        guard halted == nil else {
            answerOwedReplies()
            return
        }
        transport.learn(batch.from)
        for message in batch.messages { core.step(message) }
        scheduleProcess()
    }

    /// Whether `message` rides back in the reply to its recipient's pending `raft.exchange` call: an answer that
    /// needs no disk write (appends and heartbeats keep to the transport's queue and its flow control).
    func piggybacks(_ message: RaftMessage) -> Bool {
        guard owedReplies[message.to] != nil else { return false }
        switch message.body {
        case .heartbeatResponse, .readIndexResponse, .readIndex, .appendResponse, .voteResponse:
            return !message.requiresPersistence
        case .append, .heartbeat, .vote, .snapshot, .snapshotResponse, .timeoutNow:
            return false
        }
    }

    /// Answers every pending `raft.exchange` call with the messages gathered for its sender (the first call of a
    /// sender gets them all, the others an empty reply).
    ///
    /// A sender with nothing gathered whose messages wait in an unfinished stage (an append's acknowledgement,
    /// sent once the entries are durable) gets its last call answered when that stage is finished, with those
    /// messages: the acknowledgement rides back in the reply to the append instead of a call of its own. The
    /// transport keeps two calls in flight to each peer, so the next append need not wait for this one's write. A
    /// halted group holds nothing: its stages never finish.
    func answerOwedReplies() {
        guard !owedReplies.isEmpty else { return }
        let owed = owedReplies
        owedReplies.removeAll(keepingCapacity: true)
        for (peer, reply) in owed {
            var held: Int?
            // A halted group finishes no stage: a call held by one would never be answered.
            if halted == nil, reply.messages.isEmpty, let call = reply.appendCall,
                let position = lastStage(waitingToSendTo: peer),
                pipeline[position].heldReplies[peer] == nil
            {
                pipeline[position].heldReplies[peer] = reply.responders[call]
                held = call
            }
            var answered = false
            for (position, responder) in reply.responders.enumerated() where position != held {
                responder.succeed(replyPayload(answered ? [] : reply.messages))
                answered = true
            }
        }
    }

    /// The reply to a peer's `raft.exchange` call that carries `messages` (empty: no bytes).
    func replyPayload(_ messages: [RaftMessage]) -> ByteBuffer {
        messages.isEmpty ? ByteBuffer() : Wire.encode(RaftPeerBatch(from: configuration.node, messages: messages))
    }

    /// The newest unfinished stage with a message to `peer` that waits for its write.
    func lastStage(waitingToSendTo peer: NodeID) -> Int? {
        pipeline.lastIndex { stage in
            stage.ready.messages.contains { $0.to == peer && $0.requiresPersistence }
        }
    }

    func propose(_ body: RaftLogCommand.Body, reply: RaftReplyTarget?) {
        if let error = unavailableError() {
            reply?.succeed(.failure(error))
            return
        }
        if case .user(let request) = body,
            let cached = master.cachedResult(session: request.session, sequence: request.sequence)
        {
            reply?.succeed(cached)
            return
        }
        // The leader stamps cluster time; it never goes backwards along the log.
        let time = max(clock(), master.clusterTime)
        proposals.append(Proposal(time: time, body: body, reply: reply))
        scheduleProcess()
    }

    func query(_ request: RaftQueryRequest, reply: RaftReplyTarget) {
        guard halted == nil else {
            reply.succeed(.failure(RaftClientError(code: .unavailable, message: "the group is halted")))
            return
        }
        let read = Read(request: request, reply: reply, deadline: ticks + configuration.readTimeoutTicks)
        switch request.consistency {
        case .stale:
            serve(read)
        case .sequential:
            if applied >= request.minIndex {
                serve(read)
            } else {
                reply.succeed(
                    .failure(
                        RaftClientError(
                            code: .staleRead,
                            message: "this node has applied \(applied), below the requested \(request.minIndex)")))
            }
        case .lease:
            if let index = core.leaseReadIndex {
                serveWhenApplied(read, index: index)
            } else {
                readBatch.append(read)
                scheduleProcess()
            }
        case .linearizable:
            readBatch.append(read)
            scheduleProcess()
        }
    }

    func changeMembership(_ change: MembershipChange, reply: RaftReplyTarget) {
        if let error = unavailableError() {
            reply.succeed(.failure(error))
            return
        }
        do {
            let index = try core.changeMembership(change)
            configurationWaiters[index] = (core.term, reply)
            scheduleProcess()
        } catch {
            reply.succeed(.failure(clientError(error)))
        }
    }

    func transferLeadership(to target: NodeID) -> RaftReply {
        if let error = unavailableError() { return .failure(error) }
        do {
            try core.transferLeadership(to: target)
            scheduleProcess()
            return .ok(value: [], index: core.commitIndex)
        } catch {
            return .failure(clientError(error))
        }
    }

    // MARK: The process pass

    func scheduleProcess() {
        guard !processScheduled else { return }
        processScheduled = true
        loop.assumeIsolated().execute { [self] in process() }
    }

    func process() {
        processScheduled = false
        defer { answerOwedReplies() }
        guard halted == nil else { return }
        if !readBatch.isEmpty { startReadRound() }
        if !proposals.isEmpty {
            // A commit learned since the last pass (a peer's acknowledgement, this node's own write) opens the
            // window before the pending commands are looked at.
            if core.role == .leader, core.lastIndex <= core.commitIndex { openWindow() }
            if mayPropose() { proposeBatch() }
        }
        var rounds = 0
        repeat {
            rounds += 1
            while core.hasReady {
                let ready = core.ready()
                if let change = ready.roleChange { roleChanged(to: change.role, leader: change.leader) }
                var early: [RaftMessage] = []
                for message in ready.messages where !message.requiresPersistence {
                    if piggybacks(message) {
                        owedReplies[message.to]?.messages.append(message)
                    } else {
                        early.append(message)
                    }
                }
                transport.send(early)
                let needsWrite = ready.snapshot != nil || !ready.entries.isEmpty || hardStateNeedsSync(ready)
                if !needsWrite, let state = ready.hardState {
                    // A commit-only change: it rides with the next log write (see ``unsavedCommit``).
                    core.storage.hardState = state
                    unsavedCommit = state
                }
                nextStage += 1
                pipeline.append(Stage(sequence: nextStage, ready: ready, durable: !needsWrite))
            }
            startWrite()
            drain()
            applyCommittedEarly()
        } while core.hasReady && rounds < 16 && halted == nil
        if let failure = core.storage.failure {
            halt(failure)
            return
        }
        if core.hasReady { scheduleProcess() }
        if core.role == .leader, core.lastIndex <= core.commitIndex {
            openWindow()
            // Held behind entries the window did not count (the leader's first entry of its term, say), with no
            // window to wait for: propose them in the next pass.
            if !proposals.isEmpty, window.window == nil { scheduleProcess() }
        }
    }

    /// Whether the gathered proposals go into the log now (``ProposalWindow``): always with the window off, on a
    /// node that is not the leader (it fails them), and for a full batch.
    func mayPropose() -> Bool {
        guard window.isOn, core.role == .leader, proposals.count < configuration.maxProposalBatch else { return true }
        let now = Self.now()
        let decision = window.shouldPropose(
            pending: proposals.count, uncommitted: core.lastIndex > core.commitIndex, now: now)
        if let (closed, closing) = decision.closed {
            metrics.windowOpen.recordNanoseconds(Int64(clamping: now - min(now, closed.opened)))
            switch closing {
            case .target: metrics.windowsOnTarget.increment()
            case .deadline: metrics.windowsOnDeadline.increment()
            }
        }
        if !decision.propose { armWindowTimer() }
        return decision.propose
    }

    /// Everything this leader proposed is committed: the window, if one opens, closes at its target (checked as
    /// proposals arrive) or at its deadline, when a pass runs to propose what is pending.
    func openWindow() {
        guard window.committed(pending: proposals.count, now: Self.now()) != nil else { return }
        windowsOpened += 1
        if !proposals.isEmpty { armWindowTimer() }
    }

    /// Wakes the loop at the open window's deadline, once per window, and only once a command waits in it: a
    /// window that its first command closes (a lone client) costs no timer.
    func armWindowTimer() {
        guard let open = window.window, timerArmedFor != windowsOpened else { return }
        timerArmedFor = windowsOpened
        let opened = windowsOpened
        loop.assumeIsolated().scheduleTask(deadline: NIODeadline.uptimeNanoseconds(open.deadline)) { [self] in
            if windowsOpened == opened, window.window != nil { scheduleProcess() }
        }
    }

    /// The driver's clock for the window: `NIODeadline`'s, in nanoseconds.
    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    /// A hard state change other than the commit index (term or vote) must be durable before the batch's
    /// persistence-dependent messages leave.
    func hardStateNeedsSync(_ ready: RaftReady) -> Bool {
        guard let state = ready.hardState else { return false }
        let stored = core.storage.hardState
        return state.term != stored.term || state.vote != stored.vote
    }

    func proposeBatch() {
        let batch =
            proposals.count > configuration.maxProposalBatch
            ? Array(proposals.prefix(configuration.maxProposalBatch)) : proposals
        proposals.removeFirst(batch.count)
        if !proposals.isEmpty { scheduleProcess() }
        let entries = Self.pack(
            batch, maxCommands: configuration.maxCommandsPerEntry, maxBytes: configuration.maxCommandBytesPerEntry)
        do {
            let range = try core.propose(entries.map(\.payload))
            window.proposed(batch.count)
            let term = core.term
            for (offset, entry) in entries.enumerated() {
                if let waiter = entry.waiter { commandWaiters[range.lowerBound + UInt64(offset)] = (term, waiter) }
            }
            metrics.proposals.increment(by: Int64(batch.count))
        } catch {
            let failure = RaftReply.failure(clientError(error))
            for proposal in batch { proposal.reply?.succeed(failure) }
        }
    }

    /// The log entries of `proposals`, in order: runs of client commands become one ``RaftLogCommand/Body/batch(_:)``
    /// entry each, of at most `maxCommands` commands and about `maxBytes` argument bytes (a lone command stays a
    /// `.user` entry); any other command is an entry of its own. A batch carries the time of its last command: times
    /// never decrease along the proposals, so neither does the log's.
    static func pack(
        _ proposals: [Proposal], maxCommands: Int, maxBytes: Int
    ) -> [(payload: [UInt8], waiter: CommandWaiter?)] {
        var entries: [(payload: [UInt8], waiter: CommandWaiter?)] = []
        var position = 0
        while position < proposals.count {
            // The run of client commands that starts here, within the bounds.
            var requests: [RaftCommandRequest] = []
            var bytes = 0
            while position + requests.count < proposals.count, requests.count < max(1, maxCommands),
                requests.isEmpty || bytes < maxBytes,
                case .user(let request) = proposals[position + requests.count].body
            {
                requests.append(request)
                bytes += request.argument.count
            }
            guard requests.count > 1 else {
                // A lone command, of any kind: an entry of its own, as proposed.
                let proposal = proposals[position]
                let command = RaftLogCommand(time: proposal.time, body: proposal.body)
                entries.append((command.encodedBytes, proposal.reply.map(CommandWaiter.one)))
                position += 1
                continue
            }
            let end = position + requests.count
            let command = RaftLogCommand(time: proposals[end - 1].time, body: .batch(requests))
            let replies = proposals[position..<end].map(\.reply)
            entries.append((command.encodedBytes, replies.contains { $0 != nil } ? .batch(replies) : nil))
            position = end
        }
        return entries
    }

    func startReadRound() {
        let batch = readBatch
        readBatch.removeAll()
        let context = nextReadContext
        nextReadContext += 1
        do {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(8)
            for shift in stride(from: 0, to: 64, by: 8) {
                bytes.append(UInt8(truncatingIfNeeded: context >> UInt64(shift)))
            }
            try core.readIndex(context: bytes)
            readsByContext[context] = batch
        } catch {
            let failure = RaftReply.failure(clientError(error))
            for read in batch { read.reply.succeed(failure) }
        }
    }

    // MARK: Writing

    func startWrite() {
        guard !writeInFlight else { return }
        var writes: [RaftDisk.Write] = []
        var sequences: Set<UInt64> = []
        for position in pipeline.indices where !pipeline[position].durable && !pipeline[position].writing {
            let ready = pipeline[position].ready
            writes.append(RaftDisk.Write(snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState))
            sequences.insert(pipeline[position].sequence)
            pipeline[position].writing = true
        }
        guard !writes.isEmpty else { return }
        if let commit = unsavedCommit {
            Self.carry(commit, into: &writes)
            unsavedCommit = nil
        }
        writeInFlight = true
        metrics.writeBatch.record(Int64(writes.count))
        let disk = self.disk
        let started = NIODeadline.now()
        let batch = writes
        diskPool.runIfActive(eventLoop: loop) { try disk.persist(batch) }.assumeIsolated().whenComplete {
            [self] result in
            switch result {
            case .success(let installed):
                metrics.writeLatency.recordNanoseconds(Int64((NIODeadline.now() - started).nanoseconds))
                writeCompleted(sequences, installed: installed)
            case .failure(let error):
                halt("a log write failed: \(error)")
            }
        }
    }

    /// Makes the last of `writes` (not empty) carry `commit`'s commit index: the disk stores the last hard state of
    /// a batch, so that one gets the larger of its own commit index and `commit`'s, keeping its term and vote (a
    /// committed index stays committed in every later term). With no hard state in the batch, `commit`'s is stored.
    static func carry(_ commit: BifrostRaftCore.HardState, into writes: inout [RaftDisk.Write]) {
        guard !writes.isEmpty else { return }
        var state = writes.last { $0.hardState != nil }?.hardState ?? commit
        state.commit = max(state.commit, commit.commit)
        writes[writes.count - 1].hardState = state
    }

    func writeCompleted(_ sequences: Set<UInt64>, installed: RaftDisk.Installed?) {
        writeInFlight = false
        guard halted == nil else { return }
        for position in pipeline.indices where sequences.contains(pipeline[position].sequence) {
            var stage = pipeline[position]
            // Mirror what is now durable into the core's storage, in order.
            if let snapshot = stage.ready.snapshot {
                guard let installed else {
                    halt("the disk did not report the snapshot at \(snapshot.metadata.index) as installed")
                    return
                }
                core.storage.applySnapshot(snapshot.metadata, file: installed.file)
                stage.snapshotPayload = installed.payload
                logBytesSinceSnapshot = 0
            }
            if !stage.ready.entries.isEmpty {
                core.storage.append(stage.ready.entries)
                for entry in stage.ready.entries { logBytesSinceSnapshot += entry.payload.count }
            }
            if let state = stage.ready.hardState { core.storage.hardState = state }
            stage.durable = true
            stage.writing = false
            pipeline[position] = stage
        }
        drain()
        startWrite()
        if core.hasReady || !proposals.isEmpty || !readBatch.isEmpty { scheduleProcess() }
    }

    // MARK: Finishing stages

    func drain() {
        var finished = 0
        while halted == nil, finished < pipeline.count, pipeline[finished].durable {
            let stage = pipeline[finished]
            pipeline[finished].heldReplies.removeAll()  // answered by `finish`
            finish(stage)
            finished += 1
        }
        if finished > 0 { pipeline.removeFirst(min(finished, pipeline.count)) }
        maybeSnapshot()
    }

    /// Applies, in log order, the committed entries of the stages that still wait for this node's own log write
    /// (or for an earlier stage's). Committed means durable on a quorum, so a reply need not wait for this node's
    /// fsync: a slow write on the leader no longer holds back the replies its followers made durable. It stops at
    /// a stage that installs a snapshot, which must be restored first. Snapshots are still taken only at an index
    /// in the local log (``maybeSnapshot()``), and the stages still send their acknowledgements only when durable.
    func applyCommittedEarly() {
        var appliedAny = false
        for position in pipeline.indices {
            guard halted == nil, pipeline[position].ready.snapshot == nil else { break }
            if pipeline[position].appliedEarly { continue }
            pipeline[position].appliedEarly = true
            for entry in pipeline[position].ready.committedEntries {
                apply(entry)
                appliedAny = true
            }
        }
        guard appliedAny else { return }
        core.markApplied(through: applied)
        metrics.applied.record(Int64(applied))
        serveAppliedReads()
    }

    func finish(_ stage: Stage) {
        let ready = stage.ready
        var late: [RaftMessage] = []
        var answers: [NodeID: [RaftMessage]] = [:]
        for message in ready.messages where message.requiresPersistence {
            if stage.heldReplies[message.to] != nil {
                answers[message.to, default: []].append(message)
            } else if owedReplies[message.to] != nil {
                // A call of that peer is answered at the end of this pass: the message rides in its reply.
                owedReplies[message.to]?.messages.append(message)
            } else {
                late.append(message)
            }
        }
        for (peer, responder) in stage.heldReplies { responder.succeed(replyPayload(answers[peer] ?? [])) }
        transport.send(late)
        if let snapshot = ready.snapshot {
            do {
                try master.restore(from: stage.snapshotPayload ?? [])
                applied = snapshot.metadata.index
                hub.reset(at: applied)
                hub.endLocal(
                    RaftClientError(
                        code: .eventsLost,
                        message: "the node installed a snapshot at \(applied); events before it are gone"))
                for (id, watcher) in hub.watchers {
                    if let subscription = watcher.subscription, master.subscriptions[subscription] == nil {
                        hub.detach(id, error: RaftClientError(code: .sessionExpired, message: "the subscription ended"))
                    }
                }
                metrics.snapshotsInstalled.increment()
            } catch {
                halt("a snapshot from the leader could not be restored: \(error)")
                return
            }
        }
        if !stage.appliedEarly {
            for entry in ready.committedEntries { apply(entry) }
        }
        core.advance(ready)
        metrics.applied.record(Int64(applied))
        metrics.commit.record(Int64(core.commitIndex))
        let last = core.lastIndex
        let snapshotIndex = core.storage.snapshotMetadata.index
        metrics.last.record(Int64(last))
        metrics.snapshotIndex.record(Int64(snapshotIndex))
        metrics.logEntries.record(Int64(last - min(last, snapshotIndex)))
        for state in ready.readStates { readIndexArrived(state) }
        serveAppliedReads()
    }

    func apply(_ entry: Entry) {
        guard halted == nil, entry.index > applied else { return }
        if entry.kind == .normal, let tag = RaftLogCommand.newerKind(in: entry.payload) {
            // A newer version wrote it (the leader encodes every entry; clients cannot). Applying it as an invalid
            // command would skip what it does on this node only: the state would drift. Stop instead.
            halt(
                "log entry \(entry.index) holds a command of kind \(tag), which this version cannot read (a newer "
                    + "version wrote it): upgrade this node")
            return
        }
        applied = entry.index
        switch entry.kind {
        case .normal:
            entryReplies.removeAll(keepingCapacity: true)
            master.apply(entry, isLeader: core.role == .leader, into: &entryReplies)
            if !master.lastEvents.isEmpty { hub.record(master.lastEvents) }
            for id in master.lastRemovedSubscriptions {
                hub.end(
                    subscription: id, error: RaftClientError(code: .sessionExpired, message: "subscription \(id) ended")
                )
            }
            if let waiter = commandWaiters.removeValue(forKey: entry.index) {
                if waiter.term == entry.term {
                    waiter.reply.succeed(entryReplies)
                } else {
                    waiter.reply.succeed(all: .failure(replacedError()))
                }
            }
        case .noop:
            if let waiter = commandWaiters.removeValue(forKey: entry.index) {
                waiter.reply.succeed(all: .failure(replacedError()))
            }
        case .configuration:
            if let waiter = configurationWaiters.removeValue(forKey: entry.index) {
                waiter.reply.succeed(
                    waiter.term == entry.term ? .ok(value: [], index: entry.index) : .failure(replacedError()))
            }
            if let waiter = commandWaiters.removeValue(forKey: entry.index) {
                waiter.reply.succeed(all: .failure(replacedError()))
            }
        }
    }

    // MARK: Subscriptions

    /// Attaches a watcher to a subscription's events (leader only); `finish` runs when its stream ends.
    func watch(
        _ request: RaftWatchRequest, id: UInt64, writer: RPCPushWriter, finish: @escaping @Sendable () -> Void
    ) {
        func end(_ error: RaftClientError) {
            writer.send(RaftWatchMessage.end(error))
            finish()
        }
        if let halted { return end(RaftClientError(code: .unavailable, message: "the group is halted: \(halted)")) }
        guard core.role == .leader else { return end(notLeaderError()) }
        guard let subscription = master.subscriptions[request.subscription] else {
            if applied < request.subscription {
                return end(
                    RaftClientError(code: .busy, message: "subscription \(request.subscription) is not applied yet"))
            }
            return end(
                RaftClientError(code: .sessionExpired, message: "subscription \(request.subscription) does not exist"))
        }
        let after = SubscriptionHub.Position(index: request.afterIndex, ordinal: request.afterOrdinal)
        guard hub.canResume(stateMachine: subscription.stateMachine, kinds: [subscription.kind], after: after) else {
            return end(
                RaftClientError(
                    code: .eventsLost,
                    message: "events after \(request.afterIndex)/\(request.afterOrdinal) are no longer buffered"))
        }
        hub.attach(
            id,
            .remote(
                subscription: request.subscription, request: subscription, after: after, writer: writer,
                finish: finish))
    }

    /// Attaches a node-local watcher (any role; it survives leadership changes). `after` nil: from now on.
    func watchLocally(
        _ filter: RaftEventFilter, after: RaftEventPosition?, id: UInt64,
        deliver: @escaping (RaftRaisedEventRecord) -> Bool, end: @escaping (RaftClientError) -> Void
    ) {
        if let halted { return end(RaftClientError(code: .unavailable, message: "the group is halted: \(halted)")) }
        let after =
            after.map { SubscriptionHub.Position(index: $0.index, ordinal: $0.ordinal) }
            ?? SubscriptionHub.Position(index: applied, ordinal: .max)
        guard hub.canResume(stateMachine: filter.stateMachine, kinds: filter.kinds, after: after) else {
            return end(
                RaftClientError(
                    code: .eventsLost,
                    message: "events after \(after.index)/\(after.ordinal) are no longer buffered on this node"))
        }
        hub.attach(
            id,
            SubscriptionHub.Watcher(
                subscription: nil,
                matches: { stateMachine, event in
                    stateMachine == filter.stateMachine && filter.kinds.contains(event.kind)
                        && filter.pattern(event.pattern)
                },
                after: after, deliver: deliver, end: end, finish: {}))
    }

    // MARK: Reads

    func readIndexArrived(_ state: ReadState) {
        guard state.context.count == 8 else { return }
        var context: UInt64 = 0
        for (offset, byte) in state.context.enumerated() { context |= UInt64(byte) << UInt64(8 * offset) }
        guard let reads = readsByContext.removeValue(forKey: context) else { return }
        for read in reads { serveWhenApplied(read, index: state.index) }
    }

    func serveWhenApplied(_ read: Read, index: UInt64) {
        if index <= applied {
            serve(read)
        } else {
            let position = readsAwaitingApply.firstIndex { $0.index > index } ?? readsAwaitingApply.endIndex
            readsAwaitingApply.insert((index, read), at: position)
        }
    }

    func serveAppliedReads() {
        var served = 0
        for waiting in readsAwaitingApply {
            guard waiting.index <= applied else { break }
            serve(waiting.read)
            served += 1
        }
        if served > 0 { readsAwaitingApply.removeFirst(served) }
    }

    func serve(_ read: Read) {
        read.reply.succeed(
            master.query(
                stateMachine: read.request.stateMachine, function: read.request.function,
                argument: read.request.argument, appliedIndex: applied))
    }

    func expireReads() {
        guard !readsByContext.isEmpty else { return }
        let timeout = RaftReply.failure(
            RaftClientError(code: .timeout, message: "the read index was not confirmed in time"))
        for (context, reads) in readsByContext {
            let (expired, alive) = reads.reduce(into: ([Read](), [Read]())) { parts, read in
                if read.deadline <= ticks { parts.0.append(read) } else { parts.1.append(read) }
            }
            for read in expired { read.reply.succeed(timeout) }
            readsByContext[context] = alive.isEmpty ? nil : alive
        }
    }

    // MARK: Leadership

    func roleChanged(to role: RaftRole, leader: NodeID) {
        metrics.term.record(Int64(core.term))
        metrics.isLeader.record(role == .leader ? 1 : 0)
        if role == .leader { metrics.leaderChanges.increment() }
        // A new role starts with nothing in flight; proposals held by a window go on as the role decides.
        window.reset()
        if !proposals.isEmpty { scheduleProcess() }
        logger.info(
            "role changed",
            metadata: [
                "role": "\(role)", "leader": "\(leader)", "term": "\(core.term)", "group": "\(configuration.group)",
            ])
        guard role != .leader else { return }
        hub.endAll(notLeaderError(), includingLocal: false)
        // Proposals and reads in flight here may still commit, but this node will not learn their fate as
        // leader: clients retry at the new leader (commands are deduplicated by their session).
        let failure = RaftReply.failure(notLeaderError())
        for (_, waiter) in commandWaiters { waiter.reply.succeed(all: failure) }
        commandWaiters.removeAll()
        for (_, waiter) in configurationWaiters { waiter.reply.succeed(failure) }
        configurationWaiters.removeAll()
        for (_, reads) in readsByContext where role != .follower || leader == noNode {
            for read in reads { read.reply.succeed(failure) }
        }
        if role != .follower || leader == noNode { readsByContext.removeAll() }
    }

    // MARK: Snapshots

    func maybeSnapshot() {
        guard !snapshotting, halted == nil, applied >= snapshotRetryAt else { return }
        let base = core.storage.snapshotMetadata.index
        guard applied > base,
            Self.snapshotDue(
                applied: applied, base: base, interval: configuration.snapshotEntries, node: core.id)
                || logBytesSinceSnapshot >= configuration.snapshotLogBytes,
            let metadata = core.snapshotMetadata(at: applied), metadata.index <= core.storage.lastIndex
        else { return }
        // The master is a value: this copy shares its storage (copy on write). It is encoded, compressed and
        // written on the node's snapshot thread, so neither the event loop nor the log writes on the disk thread
        // wait for a large state; the disk thread only compacts the log afterwards. The copy is dropped as soon as
        // it is encoded, before the image is compressed and written: while it lives, updates on the loop copy
        // records instead of writing them in place.
        let source = SnapshotSource(master)
        snapshotting = true
        let disk = self.disk
        let diskPool = self.diskPool
        let loop = self.loop
        snapshotPool.runIfActive(eventLoop: loop) { () throws -> RawSnapshotFile? in
            guard let payload = try source.encode() else { return nil }
            return try disk.saveSnapshot(metadata, payload: payload)
        }
        .assumeIsolated().whenComplete { [self] result in
            snapshotting = false
            switch result {
            case .success(nil):
                break  // a newer snapshot from the leader was installed meanwhile
            case .success(let file?):
                do {
                    try core.storage.createSnapshot(metadata, file: file)
                    logBytesSinceSnapshot = 0
                    metrics.snapshotsTaken.increment()
                    logger.debug(
                        "snapshot taken", metadata: ["index": "\(metadata.index)", "bytes": "\(file.size)"])
                    // The mirror no longer lists the entries the snapshot covers: now they can go.
                    diskPool.runIfActive(eventLoop: loop) {
                        try disk.compact(through: metadata.index, term: metadata.term)
                    }
                    .assumeIsolated().whenFailure { [self] error in halt("the log could not be compacted: \(error)")
                    }
                } catch {
                    logger.warning("snapshot not recorded", metadata: ["error": "\(error)"])
                }
            case .failure(let error as RaftStateMachineError):
                // A state machine that cannot snapshot is a bug in it, not a disk failure: keep running on the
                // log and try again after another `snapshotEntries` entries.
                logger.error("the state machines could not produce a snapshot", metadata: ["error": "\(error)"])
                snapshotRetryAt = applied + configuration.snapshotEntries
            case .failure(let error):
                halt("a snapshot could not be saved: \(error)")
            }
        }
    }

    /// Whether a node that last snapshotted at `base` and has applied through `applied` takes a snapshot now, by
    /// entry count: every `interval` entries, at a phase of its own.
    ///
    /// All members apply the same entries, so with one threshold they would all snapshot at the same index, at the
    /// same moment, and on a shared machine the encodings would take every core at once. Each node's phase is a
    /// fraction of `interval` derived from its id (multiples of the golden ratio, which spread any ids evenly): it
    /// snapshots when `applied` crosses `k * interval - phase`, once at least half an interval has passed (so a
    /// node that just restarted or installed a snapshot does not take one at once), and in any case after a full
    /// interval.
    static func snapshotDue(applied: UInt64, base: UInt64, interval: UInt64, node: NodeID) -> Bool {
        guard applied > base, interval > 0 else { return false }
        let since = applied - base
        if since >= interval { return true }
        guard since >= interval / 2 else { return false }
        let phase = snapshotPhase(of: node, interval: interval)
        return (applied + phase) / interval > (base + phase) / interval
    }

    /// The node's snapshot phase, in `0..<interval`: the fractional part of `node × 0.618…`, scaled.
    static func snapshotPhase(of node: NodeID, interval: UInt64) -> UInt64 {
        let fraction = node &* 0x9E37_79B9_7F4A_7C15  // 2^64 / golden ratio: the fractional part, in 64 bits
        return UInt64((UInt128(fraction) * UInt128(interval)) >> 64)
    }

    // MARK: Errors and status

    /// Stops the group after a disk failure (as etcd does): no more writes, every waiter fails. The process and
    /// the other groups stay up.
    func halt(_ reason: String) {
        guard halted == nil else { return }
        halted = reason
        logger.critical("Raft group halted", metadata: ["group": "\(configuration.group)", "reason": "\(reason)"])
        failEverything(RaftClientError(code: .unavailable, message: "the group is halted: \(reason)"))
    }

    func failEverything(_ error: RaftClientError) {
        hub.endAll(error, includingLocal: true)
        // Peers' calls waiting for a stage that will not finish: an empty answer (Raft retransmits).
        for position in pipeline.indices {
            for responder in pipeline[position].heldReplies.values { responder.succeed(ByteBuffer()) }
            pipeline[position].heldReplies.removeAll()
        }
        let failure = RaftReply.failure(error)
        for (_, waiter) in commandWaiters { waiter.reply.succeed(all: failure) }
        for (_, waiter) in configurationWaiters { waiter.reply.succeed(failure) }
        for (_, reads) in readsByContext { for read in reads { read.reply.succeed(failure) } }
        for waiting in readsAwaitingApply { waiting.read.reply.succeed(failure) }
        for read in readBatch { read.reply.succeed(failure) }
        for proposal in proposals { proposal.reply?.succeed(failure) }
        commandWaiters.removeAll()
        configurationWaiters.removeAll()
        readsByContext.removeAll()
        readsAwaitingApply.removeAll()
        readBatch.removeAll()
        proposals.removeAll()
    }

    func unavailableError() -> RaftClientError? {
        if let halted { return RaftClientError(code: .unavailable, message: "the group is halted: \(halted)") }
        if core.role != .leader { return notLeaderError() }
        return nil
    }

    func peer(_ id: NodeID) -> RaftPeer? {
        guard id != noNode else { return nil }
        if id == configuration.node.id { return configuration.node }
        return RaftPeer(id: id, address: master.addressBook[id] ?? transport.address(of: id) ?? "")
    }

    func notLeaderError() -> RaftClientError {
        if core.leader == noNode || core.leader == configuration.node.id {
            return RaftClientError(code: .noLeader, message: "no leader is known (election in progress)")
        }
        return RaftClientError(
            code: .notLeader, message: "node \(configuration.node.id) is not the leader", leaderHint: peer(core.leader))
    }

    func replacedError() -> RaftClientError {
        RaftClientError(
            code: .notLeader, message: "the entry was replaced by a new leader; retry", leaderHint: peer(core.leader))
    }

    func clientError(_ error: RaftError) -> RaftClientError {
        switch error.code {
        case .notLeader: notLeaderError()
        case .transferInProgress, .proposalDropped, .configurationChangeInProgress:
            RaftClientError(code: .busy, message: error.message)
        default: RaftClientError(code: .invalidRequest, message: error.message)
        }
    }

    func clientError(_ error: any Error) -> RaftClientError {
        if let error = error as? RaftError { return clientError(error) }
        return RaftClientError(code: .invalidRequest, message: "\(error)")
    }

    var info: RaftClusterInfo {
        let status = core.status
        let role: String
        switch status.role {
        case _ where halted != nil: role = "stopped"
        case .leader: role = "leader"
        case .candidate: role = "candidate"
        case .preCandidate: role = "preCandidate"
        case .follower: role = status.configuration.learners.contains(configuration.node.id) ? "learner" : "follower"
        }
        return RaftClusterInfo(
            group: configuration.group, node: configuration.node, role: role, term: status.term,
            leader: peer(status.leader), commitIndex: status.commit, appliedIndex: applied,
            lastIndex: status.lastIndex, snapshotIndex: core.storage.snapshotMetadata.index,
            voters: status.configuration.voters.sorted().compactMap(peer),
            learners: status.configuration.learners.sorted().compactMap(peer))
    }
}

/// Where the reply to a request goes: a promise (``RaftNode``'s async methods), or a completion handler (its
/// callback methods, which the RPC service uses), called on the node's event loop with no future in between.
enum RaftReplyTarget: Sendable {
    case promise(EventLoopPromise<RaftReply>)
    case handler(@Sendable (RaftReply) -> Void)

    /// Delivers the reply.
    func succeed(_ reply: RaftReply) {
        switch self {
        case .promise(let promise): promise.succeed(reply)
        case .handler(let handler): handler(reply)
        }
    }
}

/// The clients waiting for one log entry: the one of a single command, or one per command of a batch (nil where
/// nobody waits).
enum CommandWaiter {
    case one(RaftReplyTarget)
    case batch([RaftReplyTarget?])

    /// Delivers the entry's replies, one per command in order (a missing one: `invalidRequest`).
    func succeed(_ replies: [RaftReply]) {
        switch self {
        case .one(let target):
            target.succeed(replies.last ?? Self.missing)
        case .batch(let targets):
            for (position, target) in targets.enumerated() {
                target?.succeed(position < replies.count ? replies[position] : Self.missing)
            }
        }
    }

    /// Delivers `reply` to every waiting client.
    func succeed(all reply: RaftReply) {
        switch self {
        case .one(let target): target.succeed(reply)
        case .batch(let targets): for target in targets { target?.succeed(reply) }
        }
    }

    private static var missing: RaftReply {
        .failure(RaftClientError(code: .invalidRequest, message: "the entry did not hold this command"))
    }
}

/// The copy of the state a snapshot encodes, handed to the snapshot thread, which drops it once it is encoded.
final class SnapshotSource: Sendable {
    private let image: Mutex<MasterStateMachine?>

    init(_ master: MasterStateMachine) { image = Mutex(master) }

    /// Encodes the copy and drops it (on the calling thread); nil when it was encoded already.
    func encode() throws(RaftStateMachineError) -> [UInt8]? {
        guard let image = image.withLock({ $0.take() }) else { return nil }
        return try image.snapshot()
    }
}
