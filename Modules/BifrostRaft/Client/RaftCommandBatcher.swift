import BifrostRPC
import BifrostWire
import NIOCore
import NIOPosix
import Synchronization

/// Gathers the commands that a ``RaftClient``'s callers issue on an event loop in one tick, and sends the ones for
/// the same node in one ``RaftServiceFunction/commands`` call.
///
/// The completion-handler ``RaftClient/command(stateMachine:function:argument:completion:)`` is mostly called on
/// event loops: an RPC reply's completion issues the caller's next command. The first command of a tick schedules
/// a flush with `EventLoop.execute`, which runs after the I/O of the tick, so the commands that the tick's other
/// replies issue join it. A lone command goes out as a plain ``RaftServiceFunction/command`` call, and a command
/// issued off an event loop goes out at once.
///
/// Batching changes no outcome. Every command keeps its own session and sequence number, and the node proposes and
/// answers each one as it would a single call. When the call fails, or its reply does not parse, every command of
/// the batch goes back to the client's retry loop, which resends it with the same sequence number.
final class RaftCommandBatcher: Sendable {
    /// A command waiting for the flush.
    struct Item: Sendable {
        /// The node to send it to.
        var address: RPCAddress
        var request: RaftCommandRequest
        /// The attempt's time budget; a batch takes the smallest of its commands'.
        var timeout: Duration
        /// Called once with the command's reply, or with `nil` when the call failed.
        var done: @Sendable (RaftReply?) -> Void
    }

    private struct State {
        var items: [Item] = []
        var flushScheduled = false
    }

    /// The most argument bytes that one call carries; a larger command goes alone.
    static let maxBatchBytes = 1 << 20

    private let state = Mutex(State())
    private let rpc: RPCClient
    private let service: UInt64

    init(rpc: RPCClient, service: UInt64) {
        self.rpc = rpc
        self.service = service
    }

    /// Sends `item` at the end of the current event-loop tick with the others issued in it, or at once when the
    /// caller is not on an event loop.
    func submit(_ item: Item) {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            send([item])
            return
        }
        let schedule = state.withLock { state in
            state.items.append(item)
            if state.flushScheduled { return false }
            state.flushScheduled = true
            return true
        }
        if schedule { loop.execute { self.flush() } }
    }

    /// Sends every waiting command: one call per node, split at ``RaftCommandRequest/maxBatchCount`` commands or
    /// ``maxBatchBytes`` argument bytes.
    func flush() {
        let waiting = state.withLock { state in
            state.flushScheduled = false
            defer { state.items = [] }
            return state.items
        }
        for batch in Self.split(waiting) { send(batch) }
    }

    /// `items` in batches: each batch goes to one address, holds at most ``RaftCommandRequest/maxBatchCount``
    /// commands, and more than ``maxBatchBytes`` argument bytes only when it holds one command. Commands keep
    /// their order within an address.
    static func split(_ items: [Item]) -> [[Item]] {
        // The usual case: one node, within the limits.
        if let first = items.first, items.count <= RaftCommandRequest.maxBatchCount,
            items.allSatisfy({ $0.address == first.address }),
            items.count == 1 || items.reduce(0, { $0 + $1.request.argument.count }) <= maxBatchBytes
        {
            return [items]
        }
        var batches: [[Item]] = []
        var open: [RPCAddress: (batch: Int, bytes: Int)] = [:]
        for item in items {
            let size = item.request.argument.count
            if let (index, bytes) = open[item.address], batches[index].count < RaftCommandRequest.maxBatchCount,
                bytes + size <= maxBatchBytes
            {
                batches[index].append(item)
                open[item.address] = (index, bytes + size)
            } else {
                open[item.address] = (batches.count, size)
                batches.append([item])
            }
        }
        return batches
    }

    private func send(_ batch: [Item]) {
        guard let first = batch.first else { return }
        let timeout = batch.lazy.map { $0.timeout }.min() ?? first.timeout
        guard batch.count > 1 else {
            rpc.call(
                first.address, service: service, function: RaftServiceFunction.command, payload: first.request.encoded,
                timeout: timeout
            ) { result in
                guard case .success(let buffer) = result else { return first.done(nil) }
                first.done(try? Wire.decode(RaftReply.self, from: buffer))
            }
            return
        }
        rpc.call(
            first.address, service: service, function: RaftServiceFunction.commands,
            payload: RaftCommandRequest.encode(batch.map { $0.request }), timeout: timeout
        ) { result in
            guard case .success(let buffer) = result,
                let replies = try? Wire.decode([RaftReply].self, from: buffer), replies.count == batch.count
            else {
                for item in batch { item.done(nil) }
                return
            }
            for (item, reply) in zip(batch, replies) { item.done(reply) }
        }
    }
}
