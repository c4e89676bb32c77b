import BifrostRPC
import BifrostWire
import NIOCore

extension RaftClient {
    /// The result of a command or query: its value and log index, or the error.
    public typealias Completion = @Sendable (Result<(value: [UInt8], index: UInt64), RaftClientError>) -> Void

    /// ``command(stateMachine:function:argument:)`` for callers that run on event loops and want no task per call.
    ///
    /// When the client has its session open and believes it knows the leader, the first attempt is an RPC call with
    /// a completion handler, and a success calls `completion` on the connection's event loop, with no task. The
    /// commands issued on one event loop in one tick share that call (``RaftServiceFunction/commands``). Anything
    /// else (no session yet, no known leader, a redirect, an error to retry) goes on in a task through the same
    /// retry loop as the async method, with the same session and sequence number: the command is still applied
    /// exactly once. `completion` is called exactly once. A ``withReplyIndex(_:)`` scope around the call sees the
    /// reply's index.
    public func command(
        stateMachine: UInt64, function: UInt64, argument: [UInt8], completion: @escaping Completion
    ) {
        let deadline = ContinuousClock.now + configuration.deadline
        // Read here: the reply arrives outside the caller's task.
        let replyIndex = Self.replyIndex
        guard configuration.useSession, let (leader, session, sequence) = nextSequenceAtLeader() else {
            inTask(replyIndex, completion) { () async throws(RaftClientError) in
                try await self.command(stateMachine: stateMachine, function: function, argument: argument)
            }
            return
        }
        // From here on the command has its sequence number: every path ends by completing that number, and a
        // failed attempt goes on in the retry loop with it.
        @Sendable func retry() {
            inTask(replyIndex, completion) { () async throws(RaftClientError) in
                try await self.runCommand(
                    session: session, sequence: sequence, stateMachine: stateMachine, function: function,
                    argument: argument, deadline: deadline)
            }
        }
        guard let timeout = attemptBudget(deadline) else {
            retry()
            return
        }
        let request = RaftCommandRequest(
            session: session, sequence: sequence, acknowledged: acknowledged(in: session),
            stateMachine: stateMachine, function: function, argument: argument)
        batcher.submit(
            RaftCommandBatcher.Item(address: leader, request: request, timeout: timeout) { reply in
                guard case .ok(let value, let index)? = reply else {
                    // The retry loop decides what the outcome means; a command that did apply is answered from the
                    // session's cache, not applied again.
                    retry()
                    return
                }
                self.seenIndex.record(index)
                replyIndex?.record(index)
                self.complete(sequence, in: session)
                completion(.success((value, index)))
            })
    }

    /// ``query(stateMachine:function:argument:consistency:)`` for callers that run on event loops and want no task
    /// per call.
    ///
    /// When the client knows where the query goes (the believed leader, for leader-bound queries), the first
    /// attempt is an RPC call with a completion handler, and a success calls `completion` on the connection's event
    /// loop, with no task. Anything else goes on in a task through the async method's retry loop. `completion` is
    /// called exactly once.
    public func query(
        stateMachine: UInt64, function: UInt64, argument: [UInt8], consistency: ReadConsistency = .linearizable,
        completion: @escaping Completion
    ) {
        let deadline = ContinuousClock.now + configuration.deadline
        let replyIndex = Self.replyIndex
        @Sendable func retry() {
            inTask(replyIndex, completion) { () async throws(RaftClientError) in
                try await self.query(
                    stateMachine: stateMachine, function: function, argument: argument, consistency: consistency)
            }
        }
        let routing = routing(of: consistency)
        let target = routing == .leader ? leaderAddress : pick(routing, avoiding: []).flatMap { RPCAddress($0) }
        guard !isClosed, let address = target, let timeout = attemptBudget(deadline) else {
            retry()
            return
        }
        let (payload, minIndex) = queryRequest(
            stateMachine: stateMachine, function: function, argument: argument, consistency: consistency)
        rpc.call(address, service: service, function: RaftServiceFunction.query, payload: payload, timeout: timeout) {
            result in
            guard case .success(let buffer) = result,
                case .ok(let value, let index)? = try? Wire.decode(RaftReply.self, from: buffer), index >= minIndex
            else {
                retry()
                return
            }
            self.seenIndex.record(index)
            replyIndex?.record(index)
            completion(.success((value, index)))
        }
    }

    /// Runs `operation` in a task, with `replyIndex` as the task's reply-index collector, and hands its outcome to
    /// `completion`.
    private func inTask(
        _ replyIndex: RaftReplyIndex?, _ completion: @escaping Completion,
        _ operation: @escaping @Sendable () async throws(RaftClientError) -> (value: [UInt8], index: UInt64)
    ) {
        Task {
            let result = await Self.$replyIndex.withValue(replyIndex) {
                () async -> Result<(value: [UInt8], index: UInt64), RaftClientError> in
                do throws(RaftClientError) {
                    return .success(try await operation())
                } catch {
                    return .failure(error)
                }
            }
            completion(result)
        }
    }
}
