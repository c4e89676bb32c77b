import BifrostRPC
import BifrostRaftCore
import BifrostWire
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import BifrostRaft

/// The peer transport against a fake peer on a real socket: `raft.exchange` replies carry the peer's answers, and a
/// peer that only knows `raft.step` (an older version) still receives every batch.
@Suite("Raft transport: exchange calls and the fallback to raft.step", .serialized)
struct RaftTransportTests {
    struct Service: RPCService {
        let functions: RPCFunctionTable
    }

    /// A peer (node 2) whose service has `raft.step`, and `raft.exchange` when `exchange` is given (it computes the
    /// reply's bytes for a batch).
    static func withPeer(
        exchange: (@Sendable (RaftPeerBatch) -> ByteBuffer)?,
        _ body: (NIOLoopBound<RaftTransport>, any EventLoop, Locked<[RaftPeerBatch]>) async throws -> Void
    ) async throws {
        var respond: (@Sendable (RaftPeerBatch, RPCResponder) -> Void)?
        if let exchange { respond = { batch, responder in responder.succeed(exchange(batch)) } }
        try await withPeer(respond: respond, body)
    }

    /// ``withPeer(exchange:_:)`` with a `raft.exchange` that answers through the responder whenever it likes.
    static func withPeer(
        respond exchange: (@Sendable (RaftPeerBatch, RPCResponder) -> Void)?,
        _ body: (NIOLoopBound<RaftTransport>, any EventLoop, Locked<[RaftPeerBatch]>) async throws -> Void
    ) async throws {
        let received = Locked<[RaftPeerBatch]>([])
        var table = RPCFunctionTable()
        table.registerCallback("raft.step", id: RaftServiceFunction.step) { payload, _, responder in
            let batch = try Wire.decode(RaftPeerBatch.self, from: payload)
            received.withLock { $0.append(batch) }
            responder.succeed(ByteBuffer())
        }
        if let exchange {
            table.registerCallback("raft.exchange", id: RaftServiceFunction.exchange) { payload, _, responder in
                let batch = try Wire.decode(RaftPeerBatch.self, from: payload)
                received.withLock { $0.append(batch) }
                exchange(batch, responder)
            }
        }
        let router = RPCRouter()
        let service = RaftServiceID.forGroup(0)
        router.register(Service(functions: table), as: service)
        var configuration = RPCServerConfiguration()
        configuration.address = RPCAddress(host: "127.0.0.1", port: 0)
        configuration.registersInProcess = false
        let server = try await RPCServer.start(configuration: configuration, router: router)
        var clientConfiguration = RPCClientConfiguration()
        clientConfiguration.inProcessShortcut = false
        let rpc = RPCClient(configuration: clientConfiguration)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let address = "127.0.0.1:\(server.localAddress.port)"
        let transport = try await loop.submit {
            let transport = RaftTransport(
                loop: loop, rpc: rpc, service: service, me: RaftPeer(id: 1, address: "127.0.0.1:1"),
                maxBatchBytes: 1 << 20, logger: Logger(label: "test.transport"))
            transport.resolve = { $0 == 2 ? address : nil }
            return NIOLoopBound(transport, eventLoop: loop)
        }.get()
        do {
            try await body(transport, loop, received)
        } catch {
            await rpc.shutdown()
            await server.shutdown(gracePeriod: .milliseconds(100))
            throw error
        }
        await rpc.shutdown()
        await server.shutdown(gracePeriod: .milliseconds(100))
    }

    static func heartbeat(_ sequence: UInt64) -> RaftMessage {
        RaftMessage(from: 1, to: 2, term: 3, body: .heartbeat(commit: 0, readSequence: sequence))
    }

    /// Polls `condition` on the transport's loop until it holds (at most 10 s).
    static func eventually(
        _ loop: any EventLoop, _ condition: @escaping @Sendable () -> Bool
    ) async throws -> Bool {
        for _ in 0..<1_000 {
            if try await loop.submit(condition).get() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test("an exchange reply's messages reach the driver; a reply naming another sender or malformed is dropped")
    func repliesAreDelivered() async throws {
        let answer = RaftMessage(from: 2, to: 1, term: 3, body: .heartbeatResponse(readSequence: 7))
        let sender = Locked<NodeID>(2)
        try await Self.withPeer(exchange: { _ in
            let id = sender.withLock { $0 }
            // Sender 0 stands for a reply that is not a batch at all.
            guard id != 0 else { return ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]) }
            return Wire.encode(RaftPeerBatch(from: RaftPeer(id: id, address: "127.0.0.1:2"), messages: [answer]))
        }) { bound, loop, received in
            let delivered = try await loop.submit { NIOLoopBound(Box(), eventLoop: loop) }.get()
            try await loop.submit {
                bound.value.deliver = { delivered.value.batches.append($0) }
                bound.value.send([Self.heartbeat(7)])
            }.get()
            #expect(try await Self.eventually(loop) { delivered.value.batches.count == 1 })
            #expect(try await loop.submit { delivered.value.batches.first?.messages }.get() == [answer])
            #expect(received.withLock { $0.count } == 1)
            // A reply that claims to come from another node is not believed, nor is a malformed one (sender 0);
            // the transport carries on.
            for (phase, id) in [(UInt64(2), NodeID(3)), (3, 0)] {
                sender.withLock { $0 = id }
                try await loop.submit { bound.value.send([Self.heartbeat(6 + phase)]) }.get()
                #expect(
                    try await Self.eventually(loop) {
                        received.withLock { $0.count } == Int(phase) && bound.value.queues[2]?.inFlight == 0
                    })
            }
            #expect(try await loop.submit { delivered.value.batches.count }.get() == 1)
        }
    }

    @Test("a peer without raft.exchange: the transport falls back to raft.step, and later batches arrive")
    func fallsBackToStep() async throws {
        try await Self.withPeer(exchange: nil) { bound, loop, received in
            try await loop.submit { bound.value.send([Self.heartbeat(1)]) }.get()
            #expect(
                try await Self.eventually(loop) {
                    bound.value.stepOnly == [2] && bound.value.queues[2]?.inFlight == 0
                })
            // The first batch was lost with the failed call (Raft retransmits); the next ones go through step.
            for sequence in UInt64(2)...4 {
                try await loop.submit { bound.value.send([Self.heartbeat(sequence)]) }.get()
            }
            #expect(try await Self.eventually(loop) { received.withLock { $0.flatMap(\.messages).count } == 3 })
            let sequences = received.withLock { $0.flatMap(\.messages) }.compactMap { message -> UInt64? in
                if case .heartbeat(_, let sequence) = message.body { return sequence }
                return nil
            }
            #expect(sequences == [2, 3, 4])
        }
    }

    static func append(_ index: UInt64) -> RaftMessage {
        let entry = Entry(index: index, term: 3, kind: .normal, payload: [1, 2, 3])
        return RaftMessage(
            from: 1, to: 2, term: 3,
            body: .append(AppendRequest(prevIndex: index - 1, prevTerm: 3, entries: [entry], commit: 0)))
    }

    @Test("two calls carry appends at once; while both wait for the peer's write, heartbeats go in a third call")
    func controlMessagesPassAppendsThatWait() async throws {
        // The peer holds every call that carries an append (as a node does until the entries are durable) and
        // answers the others at once.
        let held = Locked<[RPCResponder]>([])
        try await Self.withPeer(respond: { batch, responder in
            if batch.messages.contains(where: \.isData) {
                held.withLock { $0.append(responder) }
            } else {
                responder.succeed(ByteBuffer())
            }
        }) { bound, loop, received in
            func appendIndexes() -> [UInt64] {
                received.withLock { $0 }.flatMap(\.messages).compactMap { message -> UInt64? in
                    if case .append(let request) = message.body { return request.entries.first?.index }
                    return nil
                }
            }
            try await loop.submit { bound.value.send([Self.append(1)]) }.get()
            #expect(try await Self.eventually(loop) { held.withLock { $0.count } == 1 })
            try await loop.submit { bound.value.send([Self.append(2)]) }.get()
            #expect(try await Self.eventually(loop) { held.withLock { $0.count } == 2 })
            // Both calls are out: the next append waits, the heartbeat queued after it does not.
            try await loop.submit { bound.value.send([Self.append(3), Self.heartbeat(9)]) }.get()
            #expect(
                try await Self.eventually(loop) {
                    received.withLock { $0.flatMap(\.messages) }.contains(Self.heartbeat(9))
                        && bound.value.queues[2]?.controlInFlight == false
                })
            #expect(appendIndexes() == [1, 2])
            #expect(try await loop.submit { bound.value.queues[2]?.inFlight }.get() == 2)
            // The peer answers the first append: the third goes out, in order.
            held.withLock { $0.removeFirst() }.succeed(ByteBuffer())
            #expect(try await Self.eventually(loop) { held.withLock { $0.count } == 2 })
            #expect(appendIndexes() == [1, 2, 3])
            for responder in held.withLock({ $0 }) { responder.succeed(ByteBuffer()) }
            #expect(try await Self.eventually(loop) { bound.value.queues[2]?.inFlight == 0 })
        }
    }

    final class Box {
        var batches: [RaftPeerBatch] = []
    }

    /// A value behind a lock, shareable by closures (a `Mutex` itself cannot be captured).
    final class Locked<Value: Sendable>: Sendable {
        private let mutex: Mutex<Value>
        init(_ value: Value) { mutex = Mutex(value) }
        func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
    }
}
