import BifrostRPC
import BifrostRaftCore
import BifrostStorage
import BifrostWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A running member of one Raft group: the pure ``RaftCore`` driven on an event loop, its log and snapshots on
/// RocksDB and LZ4 files, its messages on the Bifrost RPC, and a ``MasterStateMachine`` that routes committed
/// commands to the registered state machines.
///
/// Start it with ``start(configuration:start:database:snapshots:stateMachines:router:rpc:group:logger:)``; it
/// registers the group's RPC service (``RaftServiceID/forGroup(_:)``) on `router`, so peers and ``RaftClient``s
/// reach it through the RPC server that serves `router`. Several groups may share one router, one RPC client and
/// one database. As a swift-service-lifecycle `Service`, ``run()`` returns after a graceful shutdown.
///
/// The write path: proposals that arrive together become one log append and one synced RocksDB write (group
/// commit); a leader sends them to its followers while it writes them itself; the client's reply leaves after the
/// command is applied. Heartbeats and votes never wait behind a disk write.
public final class RaftNode: Sendable {
    /// The node's configuration.
    public let configuration: RaftNodeConfiguration
    let loop: any EventLoop
    let driver: NIOLoopBound<RaftDriver>
    let diskPool: NIOThreadPool
    /// The thread that encodes and writes snapshots, beside the disk thread.
    let snapshotPool: NIOThreadPool
    let router: RPCRouter
    let rpc: RPCClient
    let logger: Logger
    let stopped = Mutex<Bool>(false)
    /// Finishes when the node stops; ``run()`` waits on it.
    let stoppedEvents: AsyncStream<Void>
    let stoppedContinuation: AsyncStream<Void>.Continuation
    let joinTask = Mutex<Task<Void, Never>?>(nil)
    let nextWatch = Atomic<UInt64>(1)

    private init(
        configuration: RaftNodeConfiguration, loop: any EventLoop, driver: NIOLoopBound<RaftDriver>,
        diskPool: NIOThreadPool, snapshotPool: NIOThreadPool, router: RPCRouter, rpc: RPCClient, logger: Logger
    ) {
        self.configuration = configuration
        self.loop = loop
        self.driver = driver
        self.diskPool = diskPool
        self.snapshotPool = snapshotPool
        self.router = router
        self.rpc = rpc
        self.logger = logger
        (stoppedEvents, stoppedContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    /// The wall clock in milliseconds since the Unix epoch, used to stamp cluster time on proposals.
    public static let systemClock: @Sendable () -> UInt64 = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(max(0, now.tv_sec)) * 1000 + UInt64(max(0, now.tv_nsec)) / 1_000_000
    }

    /// Starts a node: recovers the group from `database` and `snapshots` (or founds or joins it the first time, as
    /// `start` says), registers its RPC service on `router`, and starts its clock.
    ///
    /// - Parameters:
    ///   - stateMachines: the state machines of the group, by id (ids from 1). Every member must register the same
    ///     ones.
    ///   - rpc: the client used to reach peers (share one between groups to share connections).
    /// - Throws: ``StorageError`` when the disk state cannot be read, ``RaftStateMachineError`` when a state machine
    ///   cannot be registered or restored, ``RaftError`` for invalid settings.
    public static func start(
        configuration: RaftNodeConfiguration,
        start: RaftNodeStart,
        database: RaftLogDatabase,
        snapshots: SnapshotStore,
        stateMachines: [(id: UInt64, machine: any RaftStateMachine)],
        router: RPCRouter,
        rpc: RPCClient,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        clock: @escaping @Sendable () -> UInt64 = RaftNode.systemClock,
        logger: Logger = Logger(label: "bifrost.raft")
    ) async throws -> RaftNode {
        let me = configuration.node
        guard me.id != noNode else { throw RaftError(code: .invalidArgument, message: "node id 0 is reserved") }
        let disk = try RaftDisk(
            group: configuration.group, database: database, snapshots: snapshots, sync: configuration.syncWrites)
        var loaded = try disk.load(cacheBytes: configuration.logCacheBytes)
        if loaded.isNew, case .bootstrap(let peers) = start {
            guard peers.contains(where: { $0.id == me.id }) else {
                throw RaftError(code: .invalidArgument, message: "the bootstrap peers must include node \(me.id)")
            }
            guard Set(peers.map(\.id)).count == peers.count, !peers.contains(where: { $0.id == noNode }) else {
                throw RaftError(code: .invalidArgument, message: "bootstrap peer ids must be unique and non-zero")
            }
            try disk.bootstrap(peers: peers)
            loaded = try disk.load(cacheBytes: configuration.logCacheBytes)
            logger.info("bootstrapped a new cluster", metadata: ["peers": "\(peers)"])
        } else if !loaded.isNew {
            logger.info(
                "recovered from disk",
                metadata: [
                    "snapshot": "\(loaded.storage.snapshotMetadata.index)", "last": "\(loaded.storage.lastIndex)",
                    "term": "\(loaded.storage.hardState.term)",
                ])
        }
        var master = MasterStateMachine(settings: configuration.sessions)
        for (id, machine) in stateMachines { try master.register(machine, id: id) }
        if let payload = loaded.snapshotPayload { try master.restore(from: payload) }
        var settings = configuration.raft
        let applied = loaded.storage.snapshotMetadata.index
        settings.applied = applied
        let core = try RaftCore(
            id: me.id, storage: loaded.storage, settings: settings, randomSeed: UInt64.random(in: 1...UInt64.max))
        let diskPool = NIOThreadPool(numberOfThreads: 1)
        diskPool.start()
        let snapshotPool = NIOThreadPool(numberOfThreads: 1)
        snapshotPool.start()
        let nice = min(max(configuration.snapshotThreadNice, 0), 19)
        if nice > 0 { _ = try? await snapshotPool.runIfActive { Self.lowerPriorityOfThisThread(to: nice) } }
        let loop = group.next()
        let service = RaftServiceID.forGroup(configuration.group)
        let bound = try await loop.submit { [master] in
            let transport = RaftTransport(
                loop: loop, rpc: rpc, service: service, me: me, maxBatchBytes: configuration.maxPeerBatchBytes,
                logger: logger)
            let driver = RaftDriver(
                loop: loop, configuration: configuration, disk: disk, diskPool: diskPool, snapshotPool: snapshotPool,
                transport: transport,
                core: core, master: master, applied: applied, clock: clock, logger: logger)
            transport.resolve = { [weak driver] id in driver?.master.addressBook[id] }
            transport.deliver = { [weak driver] batch in driver?.receive(batch, replyTo: nil) }
            let bound = NIOLoopBound(driver, eventLoop: loop)
            if case .every(let interval) = configuration.ticks {
                let amount = TimeAmount(interval)
                driver.tickTask = loop.scheduleRepeatedTask(initialDelay: amount, delay: amount) { _ in
                    bound.value.tick()
                }
            }
            driver.scheduleProcess()
            return bound
        }.get()
        let node = RaftNode(
            configuration: configuration, loop: loop, driver: bound, diskPool: diskPool, snapshotPool: snapshotPool,
            router: router, rpc: rpc,
            logger: logger)
        router.register(RaftGroupService(node: node), as: service)
        if loaded.isNew, case .join(let seeds) = start { node.startJoining(seeds: seeds) }
        return node
    }

    // MARK: Client operations (the RPC service calls these; in-process callers may too)

    /// Proposes a command (this node must be the leader) and returns its result once applied.
    public func command(_ request: RaftCommandRequest) async -> RaftReply {
        await propose(.user(request))
    }

    /// Runs a query at the requested consistency level.
    public func query(_ request: RaftQueryRequest) async -> RaftReply {
        await Self.wait(submit { $0.query(request, reply: $1) })
    }

    /// ``command(_:)`` without a task: `completion` runs on the node's event loop with the reply. Called on that
    /// loop (the RPC service's connections share it), the command is proposed at once, with no task to queue, and
    /// `completion` may run before this returns (when the command fails at once, e.g. on a follower).
    public func command(_ request: RaftCommandRequest, completion: @escaping @Sendable (RaftReply) -> Void) {
        let driver = self.driver
        if loop.inEventLoop {
            driver.value.propose(.user(request), reply: .handler(completion))
        } else {
            loop.execute { driver.value.propose(.user(request), reply: .handler(completion)) }
        }
    }

    /// ``query(_:)`` without a task: `completion` runs on the node's event loop with the reply. Called on that
    /// loop, the query is taken at once, and `completion` may run before this returns.
    public func query(_ request: RaftQueryRequest, completion: @escaping @Sendable (RaftReply) -> Void) {
        let driver = self.driver
        if loop.inEventLoop {
            driver.value.query(request, reply: .handler(completion))
        } else {
            loop.execute { driver.value.query(request, reply: .handler(completion)) }
        }
    }

    /// Opens a client session; the reply's value is the session id (a varint).
    public func openSession() async -> RaftReply { await propose(.openSession) }

    /// Closes a client session.
    public func closeSession(_ session: UInt64) async -> RaftReply { await propose(.closeSession(session)) }

    /// Registers a subscription (this node must be the leader); the reply's value is its id (a varint).
    public func subscribe(_ request: RaftSubscribeRequest) async -> RaftReply { await propose(.subscribe(request)) }

    /// Removes a subscription.
    public func unsubscribe(_ id: UInt64) async -> RaftReply { await propose(.unsubscribe(id)) }

    /// Streams a subscription's events to `writer` (as ``RaftWatchMessage``s) until the stream ends: leadership
    /// lost, the subscription removed, or the caller cancelled.
    public func watch(_ request: RaftWatchRequest, writer: RPCPushWriter) async {
        let id = nextWatch.add(1, ordering: .relaxed).newValue
        let promise = loop.makePromise(of: Void.self)
        let driver = self.driver
        loop.execute { driver.value.watch(request, id: id, writer: writer, finish: { promise.succeed() }) }
        await withTaskCancellationHandler {
            try? await promise.futureResult.get()
        } onCancel: { [loop] in
            loop.execute { driver.value.hub.detach(id, error: nil) }
        }
    }

    /// The replicated subscriptions this node has applied, by id.
    public func subscriptions() async -> [UInt64: RaftSubscribeRequest] {
        let driver = self.driver
        return (try? await loop.submit { driver.value.master.subscriptions }.get()) ?? [:]
    }

    /// This node's view of the group.
    public func info() async -> RaftClusterInfo {
        let driver = self.driver
        return (try? await loop.submit { driver.value.info }.get())
            ?? RaftClusterInfo(
                group: configuration.group, node: configuration.node, role: "stopped", term: 0, leader: nil,
                commitIndex: 0, appliedIndex: 0, lastIndex: 0, snapshotIndex: 0, voters: [], learners: [])
    }

    /// Carries out a cluster operation (this node must be the leader, except for nothing).
    public func membership(_ request: RaftMembershipRequest) async -> RaftReply {
        switch request {
        case .addLearner(let peer):
            if case .failure(let error) = await propose(.setAddress(peer)) { return .failure(error) }
            return await changeMembership(.addLearner(peer.id))
        case .join(let peer):
            return await join(peer)
        case .promote(let id):
            return await changeMembership(.promote(id))
        case .remove(let id):
            return await changeMembership(.remove(id))
        case .transferLeadership(let target):
            return await transferLeadership(to: target)
        }
    }

    /// Leaves the group: asks the leader (found through the addresses this node knows) to remove this node, and
    /// returns once the removal is committed. The node keeps running until ``shutdown()``; stop it afterwards.
    public func leave(deadline: Duration = .seconds(30)) async throws(RaftClientError) {
        let info = await info()
        let seeds = (info.voters + info.learners).filter { $0.id != configuration.node.id && !$0.address.isEmpty }
            .map(\.address)
        var clientConfiguration = RaftClientConfiguration()
        clientConfiguration.group = configuration.group
        clientConfiguration.useSession = false
        clientConfiguration.deadline = deadline
        let client = RaftClient(
            seeds: seeds.isEmpty ? [configuration.node.address] : seeds, configuration: clientConfiguration, rpc: rpc,
            logger: logger)
        defer { Task { await client.close() } }
        try await client.changeMembership(.remove(configuration.node.id))
    }

    /// Advances the core's clock by one tick (for ``RaftNodeConfiguration/Ticks/manual``).
    public func tick() async {
        let driver = self.driver
        try? await loop.submit { driver.value.tick() }.get()
    }

    /// Starts an election now (operators and tests).
    public func campaign() async {
        let driver = self.driver
        try? await loop.submit {
            driver.value.core.campaign()
            driver.value.scheduleProcess()
        }.get()
    }

    // MARK: Internals

    /// Hands a peer's batch to the driver: at once when called on the node's loop (a peer's call on a connection
    /// of this node's server), else through a task on it.
    func receive(_ batch: RaftPeerBatch, replyTo responder: RPCResponder? = nil) {
        if loop.inEventLoop {
            driver.value.receive(batch, replyTo: responder)
        } else {
            loop.execute { [driver] in driver.value.receive(batch, replyTo: responder) }
        }
    }

    func propose(_ body: RaftLogCommand.Body) async -> RaftReply {
        await Self.wait(submit { $0.propose(body, reply: $1) })
    }

    /// Hands a request to the driver on the node's loop; the future completes with the driver's reply.
    func submit(
        _ request: @escaping @Sendable (RaftDriver, RaftReplyTarget) -> Void
    ) -> EventLoopFuture<RaftReply> {
        let promise = loop.makePromise(of: RaftReply.self)
        loop.execute { [driver] in request(driver.value, .promise(promise)) }
        return promise.futureResult
    }

    func changeMembership(_ change: MembershipChange) async -> RaftReply {
        // Idempotent, so that a client retrying after a lost reply (a removed leader steps down before it can
        // answer) gets success rather than "not a member".
        let driver = self.driver
        if let current = try? await loop.submit({ driver.value.core.configuration }).get() {
            let done: Bool
            switch change {
            case .addLearner(let id): done = current.members.contains(id)
            case .promote(let id): done = current.voters.contains(id)
            case .remove(let id): done = !current.members.contains(id)
            }
            if done { return .ok(value: [], index: 0) }
        }
        // A change is refused while another is uncommitted or the leader is new; retry briefly.
        var reply = RaftReply.failure(RaftClientError(code: .busy, message: "not attempted"))
        for attempt in 0..<50 {
            reply = await Self.wait(submit { $0.changeMembership(change, reply: $1) })
            guard case .failure(let error) = reply, error.code == .busy, attempt < 49 else { return reply }
            try? await Task.sleep(for: tickInterval)
        }
        return reply
    }

    func join(_ peer: RaftPeer) async -> RaftReply {
        let driver = self.driver
        guard let configuration = try? await loop.submit({ driver.value.core.configuration }).get() else {
            return .failure(RaftClientError(code: .unavailable, message: "the node is stopping"))
        }
        if configuration.voters.contains(peer.id) { return .ok(value: [], index: 0) }
        if !configuration.learners.contains(peer.id) {
            if case .failure(let error) = await propose(.setAddress(peer)) { return .failure(error) }
            if case .failure(let error) = await changeMembership(.addLearner(peer.id)) { return .failure(error) }
        }
        // Promote once the learner has caught up with the commit index (bounded wait).
        for _ in 0..<2000 {
            let caughtUp = try? await loop.submit { () -> Bool in
                let core = driver.value.core
                guard core.role == .leader else { return false }
                return (core.status.progress[peer.id]?.match ?? 0) >= core.commitIndex
            }.get()
            if caughtUp == true { return await changeMembership(.promote(peer.id)) }
            try? await Task.sleep(for: tickInterval)
            if isStopped { break }
        }
        return .failure(RaftClientError(code: .timeout, message: "node \(peer.id) did not catch up in time"))
    }

    func transferLeadership(to target: NodeID) async -> RaftReply {
        let driver = self.driver
        let started =
            (try? await loop.submit { driver.value.transferLeadership(to: target) }.get())
            ?? .failure(RaftClientError(code: .unavailable, message: "the node is stopping"))
        guard case .ok = started else { return started }
        let limit = 4 * configuration.raft.electionTick
        for _ in 0..<limit {
            try? await Task.sleep(for: tickInterval)
            let leader = try? await loop.submit { driver.value.core.leader }.get()
            if leader == target { return .ok(value: [], index: 0) }
        }
        return .failure(RaftClientError(code: .timeout, message: "leadership did not move to \(target) in time"))
    }

    func startJoining(seeds: [String]) {
        let me = configuration.node
        var clientConfiguration = RaftClientConfiguration()
        clientConfiguration.group = configuration.group
        clientConfiguration.useSession = false
        clientConfiguration.deadline = .seconds(60)
        let rpc = self.rpc
        let logger = self.logger
        let task = Task { [weak self] in
            let client = RaftClient(seeds: seeds, configuration: clientConfiguration, rpc: rpc, logger: logger)
            while !Task.isCancelled, self?.isStopped == false {
                do {
                    try await client.changeMembership(.join(me))
                    logger.info("joined the cluster", metadata: ["node": "\(me)"])
                    break
                } catch {
                    logger.warning("join failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
            await client.close()
        }
        joinTask.withLock { $0 = task }
    }

    var tickInterval: Duration {
        if case .every(let interval) = configuration.ticks { return interval }
        return .milliseconds(10)
    }

    var isStopped: Bool { stopped.withLock { $0 } }

    static func wait(_ future: EventLoopFuture<RaftReply>) async -> RaftReply {
        do {
            return try await future.get()
        } catch {
            return reply(from: .failure(error))
        }
    }

    static func reply(from result: Result<RaftReply, any Error>) -> RaftReply {
        switch result {
        case .success(let reply): reply
        case .failure(let error): .failure(RaftClientError(code: .unavailable, message: "\(error)"))
        }
    }

    // MARK: Lifecycle

    /// Stops the node: unregisters its RPC service, stops its clock, fails every waiting request, and waits for
    /// the disk thread to finish the write in progress. Idempotent.
    public func shutdown() async {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        joinTask.withLock { $0?.cancel() }
        router.unregister(RaftServiceID.forGroup(configuration.group))
        let driver = self.driver
        try? await loop.submit {
            let value = driver.value
            value.tickTask?.cancel()
            value.tickTask = nil
            value.halted = "the node stopped"
            value.failEverything(RaftClientError(code: .unavailable, message: "the node stopped"))
        }.get()
        try? await diskPool.shutdownGracefully()
        try? await snapshotPool.shutdownGracefully()
        stoppedContinuation.finish()
        logger.info("Raft node stopped", metadata: ["node": "\(configuration.node)"])
    }
}

extension RaftNode: Service {
    /// Runs until a graceful shutdown (swift-service-lifecycle), then stops the node.
    public func run() async throws {
        await withGracefulShutdownHandler {
            for await _ in stoppedEvents {}
        } onGracefulShutdown: {
            Task { await self.shutdown() }
        }
        await shutdown()
    }
}

/// The RPC service of one group on one node.
struct RaftGroupService: RPCService {
    let functions: RPCFunctionTable

    init(node: RaftNode) {
        var table = RPCFunctionTable()
        // Peer messages are handed to the node's loop without a task. `raft.step` acknowledges them at once;
        // `raft.exchange` does too, unless the batch asks for an answer (a heartbeat, a ReadIndex request, an
        // append): then the reply waits for the node to handle the batch and carries its answers to the sender,
        // an append's acknowledgement once the entries are durable (RaftDriver.answerOwedReplies). Other batches
        // (votes, acknowledgements sent on their own) never wait for this node's loop.
        for (name, id, answers) in [
            ("raft.step", RaftServiceFunction.step, false), ("raft.exchange", RaftServiceFunction.exchange, true),
        ] {
            table.registerCallback(name, id: id) { [weak node] payload, _, responder in
                let batch = try Self.decode(RaftPeerBatch.self, payload)
                guard let node, answers, batch.messages.contains(where: \.asksForAnswer) else {
                    node?.receive(batch)
                    responder.succeed(ByteBuffer())
                    return
                }
                node.receive(batch, replyTo: responder)
            }
        }
        /// A function that decodes a `Request`, hands it to the node and answers with its `RaftReply`.
        func reply<Request: WireDecodable & SendableMetatype>(
            _ name: String, _ id: UInt64, _ type: Request.Type,
            _ body: @escaping @Sendable (RaftNode, Request) async -> RaftReply
        ) {
            table.register(name, id: id) { [weak node] payload, _ in
                let request = try Self.decode(Request.self, payload)
                guard let node else { return Self.stopped.encoded }
                return await body(node, request).encoded
            }
        }
        /// Like `reply`, without a task: the node answers on its event loop and the reply goes straight to the
        /// connection (the hot paths: every client write and read).
        func callback<Request: WireDecodable & SendableMetatype>(
            _ name: String, _ id: UInt64, _ type: Request.Type,
            _ body: @escaping @Sendable (RaftNode, Request, @escaping @Sendable (RaftReply) -> Void) -> Void
        ) {
            table.registerCallback(name, id: id) { [weak node] payload, _, responder in
                let request = try Self.decode(Request.self, payload)
                guard let node else {
                    responder.succeed(Self.stopped.encoded)
                    return
                }
                body(node, request) { reply in responder.succeed(reply.encoded) }
            }
        }
        callback("raft.command", RaftServiceFunction.command, RaftCommandRequest.self) {
            $0.command($1, completion: $2)
        }
        table.registerCallback("raft.commands", id: RaftServiceFunction.commands) { [weak node] payload, _, responder in
            let requests = try Self.decode([RaftCommandRequest].self, payload)
            guard (1...RaftCommandRequest.maxBatchCount).contains(requests.count) else {
                throw RPCError(
                    code: .badRequest,
                    message:
                        "a command batch holds 1...\(RaftCommandRequest.maxBatchCount) commands, not \(requests.count)")
            }
            guard let node else {
                responder.succeed(RaftReply.encode(Array(repeating: Self.stopped, count: requests.count)))
                return
            }
            let replies = RaftReplyCollector(count: requests.count) { responder.succeed(RaftReply.encode($0)) }
            for (position, request) in requests.enumerated() {
                node.command(request) { replies.set(position, $0) }
            }
        }
        callback("raft.query", RaftServiceFunction.query, RaftQueryRequest.self) { $0.query($1, completion: $2) }
        reply("raft.openSession", RaftServiceFunction.openSession, Empty.self) { node, _ in await node.openSession() }
        reply("raft.closeSession", RaftServiceFunction.closeSession, UInt64.self) { await $0.closeSession($1) }
        reply("raft.membership", RaftServiceFunction.membership, RaftMembershipRequest.self) {
            await $0.membership($1)
        }
        reply("raft.subscribe", RaftServiceFunction.subscribe, RaftSubscribeRequest.self) { await $0.subscribe($1) }
        reply("raft.unsubscribe", RaftServiceFunction.unsubscribe, UInt64.self) { await $0.unsubscribe($1) }
        table.register("raft.info", id: RaftServiceFunction.info) { [weak node] _, _ in
            guard let node else { throw RPCError(code: .unavailable, message: "the node stopped") }
            return Wire.encode(await node.info())
        }
        table.registerStream("raft.watch") { [weak node] payload, _, writer in
            let request = try Self.decode(RaftWatchRequest.self, payload)
            guard let node else {
                writer.send(RaftWatchMessage.end(RaftClientError(code: .unavailable, message: "the node stopped")))
                return
            }
            await node.watch(request, writer: writer)
        }
        functions = table
    }

    /// The empty payload of functions without a request.
    struct Empty: WireDecodable {
        init(from reader: inout WireReader) throws(WireError) {}
    }

    static let stopped = RaftReply.failure(RaftClientError(code: .unavailable, message: "the node stopped"))

    /// The replies of a ``RaftServiceFunction/commands`` call: hands them over, in order, once each command has
    /// answered. The commands answer on the node's loop, the collector may be made elsewhere: a lock keeps it
    /// simple (it is never contended).
    final class RaftReplyCollector: Sendable {
        private struct State {
            var replies: [RaftReply?]
            var missing: Int
        }
        private let state: Mutex<State>
        private let done: @Sendable ([RaftReply]) -> Void

        init(count: Int, done: @escaping @Sendable ([RaftReply]) -> Void) {
            state = Mutex(State(replies: Array(repeating: nil, count: count), missing: count))
            self.done = done
        }

        /// Records the reply of the command at `position`; the last one hands the replies over. A second reply for
        /// the same position is ignored.
        func set(_ position: Int, _ reply: RaftReply) {
            let complete = state.withLock { state -> [RaftReply]? in
                guard state.replies[position] == nil else { return nil }
                state.replies[position] = reply
                state.missing -= 1
                return state.missing == 0 ? state.replies.compactMap { $0 } : nil
            }
            if let complete { done(complete) }
        }
    }

    static func decode<Value: WireDecodable>(_ type: Value.Type, _ payload: ByteBuffer) throws(RPCError) -> Value {
        do {
            return try Wire.decode(type, from: payload)
        } catch {
            throw RPCError(code: .badRequest, message: "malformed \(Value.self): \(error)")
        }
    }
}

extension RaftNode {
    /// Sets the calling thread's niceness. On Linux a thread has its own, and `setpriority(PRIO_PROCESS, 0, …)`
    /// sets the caller's alone; elsewhere this does nothing.
    static func lowerPriorityOfThisThread(to nice: Int32) {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice)
        #endif
    }
}
