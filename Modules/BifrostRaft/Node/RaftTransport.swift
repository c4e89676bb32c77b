import BifrostRPC
import BifrostRaftCore
import BifrostWire
import Logging
import NIOCore

/// Sends a node's Raft messages to its peers over the RPC client, confined to the node's event loop.
///
/// One ordered queue per peer. Messages produced while calls are out travel together in the next one (batching
/// grows with load), and a peer receives them in the order they were produced. Up to ``maxInFlight`` calls are out
/// to a peer at once: a peer answers a call that carries an append once the entries are durable, with its
/// acknowledgement in the reply, so a second call brings the next append meanwhile. While those are out, a third
/// call may carry the queue's control messages (heartbeats, ReadIndex traffic, votes: everything but appends and
/// snapshot chunks), ahead of the appends queued before them, so that a peer with a slow disk still hears from
/// this node. That reordering is safe: a heartbeat's commit index never exceeds what the peer acknowledged.
///
/// A failed call drops its messages: Raft retransmits what matters (probes, heartbeats, snapshot chunks), and the
/// RPC client fails fast while a peer is down. Groups share the RPC client, so groups on the same pair of servers
/// share connections.
final class RaftTransport {
    let loop: any EventLoop
    let rpc: RPCClient
    let service: UInt64
    let me: RaftPeer
    let maxBatchBytes: Int
    let logger: Logger
    /// Resolves a node id to its address from the replicated address book (set by the driver).
    var resolve: (NodeID) -> String? = { _ in nil }
    /// Addresses learned from incoming peer batches.
    var learned: [NodeID: String] = [:]
    /// Hands the driver the messages a peer sent back in the reply to a `raft.exchange` call (set by the driver).
    var deliver: (RaftPeerBatch) -> Void = { _ in }
    /// Peers that answered `raft.exchange` with `functionNotFound` (an older version): they get `raft.step`.
    var stepOnly: Set<NodeID> = []

    struct Queue {
        var messages: [RaftMessage] = []
        var bytes = 0
        /// Calls out in order (appends and whatever was queued with them).
        var inFlight = 0
        /// A call of control messages only is out, sent while `inFlight` was at its limit.
        var controlInFlight = false
    }
    /// Calls out to one peer at most, besides one of control messages.
    static let maxInFlight = 2
    var queues: [NodeID: Queue] = [:]
    var dropped = 0
    /// Calls made to peers so far.
    var callsMade = 0

    init(loop: any EventLoop, rpc: RPCClient, service: UInt64, me: RaftPeer, maxBatchBytes: Int, logger: Logger) {
        self.loop = loop
        self.rpc = rpc
        self.service = service
        self.me = me
        self.maxBatchBytes = maxBatchBytes
        self.logger = logger
    }

    func learn(_ peer: RaftPeer) {
        guard peer.id != noNode, peer.id != me.id, !peer.address.isEmpty else { return }
        if learned[peer.id] != peer.address { learned[peer.id] = peer.address }
    }

    func address(of node: NodeID) -> String? {
        resolve(node) ?? learned[node]
    }

    func send(_ messages: [RaftMessage]) {
        guard !messages.isEmpty else { return }
        var touched: [NodeID] = []
        for message in messages {
            var queue = queues[message.to] ?? Queue()
            let size = Self.size(of: message)
            // A peer that cannot keep up loses messages instead of growing memory without bound.
            if queue.bytes + size > maxBatchBytes * 8 && !queue.messages.isEmpty {
                dropped += 1
                continue
            }
            queue.messages.append(message)
            queue.bytes += size
            queues[message.to] = queue
            if !touched.contains(message.to) { touched.append(message.to) }
        }
        for peer in touched { pump(peer) }
    }

    func pump(_ peer: NodeID) {
        guard var queue = queues[peer], !queue.messages.isEmpty else { return }
        guard let address = address(of: peer), let target = RPCAddress(address) else {
            logger.debug("no address for peer; dropping messages", metadata: ["peer": "\(peer)"])
            return
        }
        let batch: [RaftMessage]
        let bytes: Int
        let control: Bool
        if queue.inFlight < Self.maxInFlight {
            var take = 0
            var taken = 0
            while take < queue.messages.count {
                let size = Self.size(of: queue.messages[take])
                if take > 0 && taken + size > maxBatchBytes { break }
                taken += size
                take += 1
            }
            batch = Array(queue.messages.prefix(take))
            queue.messages.removeFirst(take)
            bytes = taken
            control = false
            queue.inFlight += 1
        } else if !queue.controlInFlight {
            // The control messages go ahead; the data stays queued, in order, behind the calls that are out.
            var controlMessages: [RaftMessage] = []
            var data: [RaftMessage] = []
            for message in queue.messages {
                if message.isData { data.append(message) } else { controlMessages.append(message) }
            }
            guard !controlMessages.isEmpty else { return }
            batch = controlMessages
            queue.messages = data
            bytes = batch.reduce(0) { $0 + Self.size(of: $1) }
            control = true
            queue.controlInFlight = true
        } else {
            return
        }
        queue.bytes -= bytes
        queues[peer] = queue
        callsMade += 1
        let payload = Wire.encode(RaftPeerBatch(from: me, messages: batch), capacity: bytes + 64)
        // No task per batch: the call goes straight to the connection's loop, and its result comes back here
        // with one `execute`.
        let transport = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        let function = stepOnly.contains(peer) ? RaftServiceFunction.step : RaftServiceFunction.exchange
        rpc.call(target, service: service, function: function, payload: payload) { result in
            let done: @Sendable () -> Void = {
                let transport = transport.value
                switch result {
                case .success(let reply):
                    transport.received(reply, from: peer)
                case .failure(let error):
                    if error.code == .functionNotFound, function == RaftServiceFunction.exchange {
                        // An older peer: Raft retransmits what this batch carried.
                        transport.stepOnly.insert(peer)
                    }
                    transport.logger.trace("peer batch failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                }
                if control {
                    transport.queues[peer]?.controlInFlight = false
                } else {
                    transport.queues[peer]?.inFlight -= 1
                }
                transport.pump(peer)
            }
            if loop.inEventLoop { done() } else { loop.execute(done) }
        }
        // The batch was cut at `maxBatchBytes`, or control messages wait behind calls that are out.
        if !queues[peer, default: Queue()].messages.isEmpty { pump(peer) }
    }

    /// Hands over the messages a peer sent back in its reply (an empty reply carries none).
    func received(_ reply: ByteBuffer, from peer: NodeID) {
        guard reply.readableBytes > 0 else { return }
        do {
            let batch = try Wire.decode(RaftPeerBatch.self, from: reply)
            guard batch.from.id == peer else {
                logger.debug("a peer's reply names another sender", metadata: ["peer": "\(peer)"])
                return
            }
            deliver(batch)
        } catch {
            logger.debug("a peer's reply is malformed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }

    static func size(of message: RaftMessage) -> Int {
        switch message.body {
        case .append(let request):
            var total = 32
            for entry in request.entries { total += entry.byteSize }
            return total
        case .snapshot(let chunk): return chunk.data.count + 64
        default: return 32
        }
    }
}
