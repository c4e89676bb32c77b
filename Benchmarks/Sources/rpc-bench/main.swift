// RPC echo throughput and latency, side by side with a raw SwiftNIO echo (length-prefixed frames, no RPC layer)
// measured in the same run as the ceiling for this stack.
//
//   cd Benchmarks && swift run -c release rpc-bench [seconds-per-case]
//
// Each case runs a 100-byte echo over one loopback connection with a fixed number of requests in flight,
// warms up for one second, then measures for the given duration (default 5 s).

import BifrostRPC
import Histogram
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

let payloadSize = 100
let seconds = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 5
let group = MultiThreadedEventLoopGroup.singleton

struct Result {
    var calls: Int
    var elapsed: Duration
    var histogram: Histogram<UInt64>
    var perSecond: Double {
        Double(calls) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

func micros(_ duration: Duration) -> UInt64 {
    UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
}

// MARK: - Raw NIO echo (the ceiling)

/// Echoes every length-prefixed frame back; flushes once per read burst, and with `batchBytes` also whenever that
/// many bytes are pending (the write rule of the RPC's `writeBatchBytes`).
final class RawEchoServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var pending: ByteBuffer?
    private let batchBytes: Int?

    init(batchBytes: Int?) { self.batchBytes = batchBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        if pending == nil { pending = context.channel.allocator.buffer(capacity: 4096) }
        pending!.writeInteger(UInt32(frame.readableBytes))
        pending!.writeBuffer(&frame)
        if let batchBytes, let out = pending, out.readableBytes >= batchBytes {
            pending = nil
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let out = pending {
            pending = nil
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }
}

/// Splits length-prefixed frames.
struct LengthPrefixDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
            buffer.readableBytes >= 4 + Int(length)
        else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }
    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// Keeps `window` requests in flight: each reply records its latency and sends the next request. Flushes once
/// per read burst, and with `batchBytes` also whenever that many bytes are unflushed.
final class RawEchoClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let window: Int
    let batchBytes: Int?
    var unflushed = 0
    var sentAt: [ContinuousClock.Instant] = []  // FIFO: the echo preserves order
    var head = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var completed = 0
    var measuring = false
    var stopped = false
    var done: EventLoopPromise<Void>?
    let payload = ByteBuffer(repeating: 7, count: payloadSize)

    init(window: Int, batchBytes: Int?) {
        self.window = window
        self.batchBytes = batchBytes
    }

    func channelActive(context: ChannelHandlerContext) {
        for _ in 0..<window { send(context) }
        context.flush()
    }

    func send(_ context: ChannelHandlerContext) {
        var frame = context.channel.allocator.buffer(capacity: 4 + payloadSize)
        frame.writeInteger(UInt32(payloadSize))
        frame.writeImmutableBuffer(payload)
        sentAt.append(.now)
        context.write(wrapOutboundOut(frame), promise: nil)
        unflushed += 4 + payloadSize
        if let batchBytes, unflushed >= batchBytes {
            unflushed = 0
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let started = sentAt[head]
        head += 1
        if head > 4096 {
            sentAt.removeFirst(head)
            head = 0
        }
        if measuring {
            histogram.record(micros(.now - started))
            completed += 1
        }
        if stopped {
            if head == sentAt.count { done?.succeed() }
        } else {
            send(context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        unflushed = 0
        context.flush()
    }
}

func runRawEcho(window: Int, batchBytes: Int? = nil) async throws -> Result {
    let server = try await ServerBootstrap(group: group)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixDecoder()))
                try channel.pipeline.syncOperations.addHandler(RawEchoServerHandler(batchBytes: batchBytes))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    let port = server.localAddress!.port!
    let client = try await ClientBootstrap(group: group)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixDecoder()))
                try channel.pipeline.syncOperations.addHandler(
                    RawEchoClientHandler(window: window, batchBytes: batchBytes))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await Task.sleep(for: .seconds(1))  // warm-up
    let start = ContinuousClock.now
    try await client.eventLoop.submit {
        try client.pipeline.syncOperations.handler(type: RawEchoClientHandler.self).measuring = true
    }.get()
    try await Task.sleep(for: .seconds(seconds))
    let (calls, histogram, elapsed) = try await client.eventLoop.submit {
        let h = try client.pipeline.syncOperations.handler(type: RawEchoClientHandler.self)
        h.measuring = false
        h.stopped = true
        return (h.completed, h.histogram, ContinuousClock.now - start)
    }.get()
    try await client.close()
    try await server.close()
    return Result(calls: calls, elapsed: elapsed, histogram: histogram)
}

// MARK: - Bifrost RPC echo

struct Echo: RPCService {
    var functions: RPCFunctionTable {
        var table = RPCFunctionTable()
        table.register("Echo.echo") { payload, _ in payload }
        return table
    }
}

/// The phase of an RPC run: 0 warm-up, 1 measuring, 2 stop.
final class Control: Sendable {
    let phase = Atomic<Int>(0)
}

/// The Bifrost RPC echo with `window` calling tasks; with `onLoop` they prefer the connection's event loop
/// (`RPCClient.executor(for:)`), otherwise they run on the cooperative pool.
func runRPCEcho(window: Int, onLoop: Bool = false) async throws -> Result {
    var serverConfiguration = RPCServerConfiguration()
    serverConfiguration.registersInProcess = false
    serverConfiguration.writeBatchBytes = batchBytes
    let server = try await RPCServer.start(configuration: serverConfiguration)
    server.router.register(Echo(), as: 1)
    var clientConfiguration = RPCClientConfiguration()
    clientConfiguration.inProcessShortcut = false
    clientConfiguration.writeBatchBytes = batchBytes
    let client = RPCClient(configuration: clientConfiguration)
    let address = server.localAddress
    let function = RPCFunctionID.of("Echo.echo")
    let payload = ByteBuffer(repeating: 7, count: payloadSize)
    let control = Control()
    let executor: EventLoopTaskExecutor? = onLoop ? try await client.executor(for: address) : nil
    let result = try await withThrowingTaskGroup(of: (Int, Histogram<UInt64>).self) { group in
        for _ in 0..<window {
            group.addTask(executorPreference: executor) {
                var histogram = Histogram<UInt64>(
                    highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                var calls = 0
                while true {
                    let current = control.phase.load(ordering: .relaxed)
                    if current == 2 { break }
                    let began = ContinuousClock.now
                    _ = try await client.call(
                        address, service: 1, function: function, payload: payload, timeout: .seconds(30))
                    if current == 1 && control.phase.load(ordering: .relaxed) == 1 {
                        histogram.record(micros(.now - began))
                        calls += 1
                    }
                }
                return (calls, histogram)
            }
        }
        try await Task.sleep(for: .seconds(1))
        let measuredFrom = ContinuousClock.now
        control.phase.store(1, ordering: .relaxed)
        try await Task.sleep(for: .seconds(seconds))
        control.phase.store(2, ordering: .relaxed)
        let elapsed = ContinuousClock.now - measuredFrom
        var total = 0
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for try await (calls, histogram) in group {
            total += calls
            merged.add(histogram)
        }
        return Result(calls: total, elapsed: elapsed, histogram: merged)
    }
    await client.shutdown()
    await server.shutdown()
    return result
}

// MARK: - Report

func line(_ name: String, _ result: Result) -> String {
    let p50 = result.histogram.valueAtPercentile(50)
    let p99 = result.histogram.valueAtPercentile(99)
    return "| \(name) | \(Int(result.perSecond)) | \(p50) | \(p99) |"
}

func ratio(_ a: Result, _ b: Result) -> Double { (a.perSecond / b.perSecond * 100).rounded() / 100 }

/// The write batch of the RPC's default configuration, used by the "batched" raw echo; a fourth argument
/// overrides it for both (`rpc-bench 3 rpc-loop 64 4096`).
let batchBytes =
    CommandLine.arguments.count > 4 ? Int(CommandLine.arguments[4]) ?? 2048 : RPCServerConfiguration().writeBatchBytes

print("RPC echo vs raw NIO echo: \(payloadSize)-byte payload, one loopback connection, \(seconds) s per case")
print("| case | calls/s | p50 µs | p99 µs |")
print("|---|---:|---:|---:|")
// `rpc-bench SECONDS CASE WINDOW [BATCH-BYTES]` runs one case (raw, raw-batched, rpc, rpc-loop), for profiling.
if CommandLine.arguments.count > 3, let window = Int(CommandLine.arguments[3]) {
    switch CommandLine.arguments[2] {
    case "raw": print(line("raw NIO echo, \(window) in flight", try await runRawEcho(window: window)))
    case "raw-batched":
        print(
            line(
                "raw NIO echo, \(batchBytes)-byte write batches, \(window) in flight",
                try await runRawEcho(window: window, batchBytes: batchBytes)))
    case "rpc-loop":
        print(
            line(
                "Bifrost RPC, \(window) in flight, callers on the loop",
                try await runRPCEcho(window: window, onLoop: true)))
    default: print(line("Bifrost RPC, \(window) in flight", try await runRPCEcho(window: window)))
    }
    exit(0)
}
var ratios: [String] = []
for window in [1, 64, 256] {
    let raw = try await runRawEcho(window: window)
    print(line("raw NIO echo, \(window) in flight", raw))
    let batched = try await runRawEcho(window: window, batchBytes: batchBytes)
    print(line("raw NIO echo, \(batchBytes)-byte write batches, \(window) in flight", batched))
    let rpc = try await runRPCEcho(window: window)
    print(line("Bifrost RPC, \(window) in flight", rpc))
    let pinned = try await runRPCEcho(window: window, onLoop: true)
    print(line("Bifrost RPC, \(window) in flight, callers on the connection's loop", pinned))
    ratios.append(
        "\(window) in flight: RPC/raw = \(ratio(rpc, raw)), callers on the loop: \(ratio(pinned, raw)); "
            + "against the batched raw echo: \(ratio(rpc, batched)) and \(ratio(pinned, batched))")
}
for ratio in ratios { print(ratio) }
