import BifrostRPC
import BifrostWire
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Suspends callers until opened.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}

/// Counts handlers running at once, and lets a test wait until some number have started.
actor Probe {
    private(set) var entered = 0
    private(set) var left = 0
    private(set) var running = 0
    private(set) var peak = 0
    private var watchers: [(Int, CheckedContinuation<Void, Never>)] = []
    private var leaveWatchers: [(Int, CheckedContinuation<Void, Never>)] = []

    func enter() {
        entered += 1
        running += 1
        peak = max(peak, running)
        let ready = watchers.filter { $0.0 <= entered }
        watchers.removeAll { $0.0 <= entered }
        for (_, watcher) in ready { watcher.resume() }
    }

    func leave() {
        running -= 1
        left += 1
        let ready = leaveWatchers.filter { $0.0 <= left }
        leaveWatchers.removeAll { $0.0 <= left }
        for (_, watcher) in ready { watcher.resume() }
    }

    func waitUntilLeft(_ count: Int) async {
        if left >= count { return }
        await withCheckedContinuation { leaveWatchers.append((count, $0)) }
    }

    func waitUntilEntered(_ count: Int) async {
        if entered >= count { return }
        await withCheckedContinuation { watchers.append((count, $0)) }
    }
}

/// A service with the behaviours the tests need.
struct TestService: RPCService {
    let gate: Gate
    let probe: Probe

    var functions: RPCFunctionTable {
        var table = RPCFunctionTable()
        let gate = self.gate
        let probe = self.probe
        table.register("Test.echo") { payload, _ in payload }
        table.register("Test.double") { payload, _ in
            let value = try Wire.decode(UInt64.self, from: payload)
            // Vary the completion order.
            for _ in 0..<(value % 5) { await Task.yield() }
            return Wire.encode(value &* 2)
        }
        table.register("Test.gated") { payload, _ in
            await probe.enter()
            await gate.wait()
            await probe.leave()
            return payload
        }
        table.register("Test.sleepUntilCancelled") { _, _ in
            await probe.enter()
            do {
                try await Task.sleep(for: .seconds(600))
            } catch {
                await probe.leave()
                throw error
            }
            return ByteBuffer()
        }
        table.registerStream("Test.count") { payload, _, push in
            let count = try Wire.decode(UInt64.self, from: payload)
            for index in 0..<count { push.send(index) }
        }
        table.registerStream("Test.countThenFail") { payload, _, push in
            push.send(UInt64(1))
            throw RPCError(code: .resourceExhausted, message: "stream broke")
        }
        return table
    }
}

func id(_ name: String) -> UInt64 { RPCFunctionID.of(name) }

/// A client that always uses the socket.
func socketClient(
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    _ configure: (inout RPCClientConfiguration) -> Void = { _ in }
) -> RPCClient {
    var configuration = RPCClientConfiguration()
    configuration.inProcessShortcut = false
    // The whole test suite shares two cores; only the keepalive test wants a short keepalive.
    configuration.keepaliveInterval = .seconds(60)
    configuration.keepaliveTimeout = .seconds(60)
    configure(&configuration)
    return RPCClient(configuration: configuration, group: group)
}

/// The code of the `RPCError` that `body` throws, or nil if it returns.
func errorCode(_ body: () async throws -> Void) async -> RPCError.Code? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error.code
    } catch {
        Issue.record("expected an RPCError, got \(error)")
        return nil
    }
}

/// Waits for `channel` to close, giving up (false) after `limit`.
func closes(_ channel: any Channel, within limit: Duration = .seconds(10)) async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
        group.addTask {
            (try? await channel.closeFuture.get()) != nil
        }
        group.addTask {
            try? await Task.sleep(for: limit)
            return false
        }
        let first = await group.next() ?? false
        group.cancelAll()
        if !first { try? await channel.close() }
        return first
    }
}

/// Collects what a raw connection receives.
final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex(ByteBuffer())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        _ = received.withLock { $0.writeBuffer(&bytes) }
    }

    var bytes: ByteBuffer { received.withLock { $0 } }
}

/// A plain TCP connection with no RPC layer, to send hostile bytes.
func rawConnection(to address: RPCAddress) async throws -> (any Channel, ByteCollector) {
    let collector = ByteCollector()
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
        }
        .connect(host: address.host, port: address.port)
        .get()
    return (channel, collector)
}
