import BifrostMacros
import BifrostStorage
import Foundation
import Testing

// The code of docs/state-machines.md. `tutorialCodeBlocksAreHere` checks that every Swift block of that page
// appears in this file verbatim, so the tutorial always compiles and runs.

// tutorial: declare
@StateMachine
struct Counter: Codable {
    var value: Int64 = 0

    /// Every change, with the new value.
    static let onChanged = Subscription<NoPattern, Int64>("onChanged")
    /// The counter reached a value (the pattern), with the amount that got it there.
    static let onReached = Subscription<Int64, Int64>("onReached")

    @Command mutating func add(_ amount: Int64, context: RaftApplyContext) -> Int64 {
        value += amount
        context.notify(Self.onChanged, payload: value)
        context.notify(Self.onReached, pattern: value, payload: amount)
        return value
    }

    @Command mutating func reset() throws(RaftStateMachineError) {
        guard value != 0 else { throw RaftStateMachineError(code: .rejected, message: "already zero") }
        value = 0
    }

    @Query func get() -> Int64 { value }
}
// end

// tutorial: node
func startCounterNode(
    _ me: RaftPeer, peers: [RaftPeer], server: RPCServer, rpc: RPCClient, directory: String
) async throws -> RaftNode {
    try await RaftNode.start(
        configuration: RaftNodeConfiguration(node: me),
        start: .bootstrap(peers),
        database: try RaftLogDatabase(path: directory + "/log"),
        snapshots: try SnapshotStore(directory: directory + "/snapshots"),
        stateMachines: [(1, Counter())],
        router: server.router,
        rpc: rpc)
}
// end

// tutorial: compact event content
struct Moved: RaftEventContent {
    let from: UInt64, to: UInt64
    func pattern(kind: UInt64) -> [UInt8] { [] }
    func payload(kind: UInt64) -> [UInt8] { Wire.encodeToBytes([from, to]) }
    var compactSize: Int? { 16 }
    func writeCompact(to bytes: UnsafeMutableRawBufferPointer) {
        bytes.storeBytes(of: from.littleEndian, toByteOffset: 0, as: UInt64.self)
        bytes.storeBytes(of: to.littleEndian, toByteOffset: 8, as: UInt64.self)
    }
    static func readCompact(from bytes: UnsafeRawBufferPointer) -> Moved? {
        guard bytes.count == 16 else { return nil }
        return Moved(
            from: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            to: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }
}
// end

@Suite("docs/state-machines.md")
struct TutorialTests {
    @Test("the tutorial runs: a counter on a 3-node cluster, with a subscription")
    func tutorial() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bifrost-tutorial-\(UUID())").path
        var servers: [RPCServer] = []
        var nodes: [RaftNode] = []
        let rpc = RPCClient()
        var raft: RaftClient?
        func cleanUp() async {
            await raft?.close()
            for node in nodes { await node.shutdown() }
            for server in servers { await server.shutdown(gracePeriod: .milliseconds(100)) }
            await rpc.shutdown()
            try? FileManager.default.removeItem(atPath: root)
        }
        do {
            for _ in 0..<3 { servers.append(try await RPCServer.start()) }
            let peers = servers.enumerated().map {
                RaftPeer(id: UInt64($0.offset + 1), address: "\($0.element.localAddress)")
            }
            for (server, me) in zip(servers, peers) {
                let directory = root + "/node-\(me.id)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                nodes.append(
                    try await startCounterNode(me, peers: peers, server: server, rpc: rpc, directory: directory))
            }
            let addresses = peers.map(\.address)
            let client = RaftClient(seeds: addresses)
            raft = client

            // tutorial: use
            let counter = CounterClient(raft: client, stateMachine: 1)
            let changes = try await counter.onChanged()  // every change
            let tens = try await counter.onReached(10)  // only when the counter reaches 10

            #expect(try await counter.add(4) == 4)
            #expect(try await counter.add(6) == 10)
            #expect(try await counter.get() == 10)  // linearizable by default
            #expect(try await counter.get(consistency: .stale) >= 0)  // any node, maybe older

            var seen: [Int64] = []
            for try await (_, value) in changes {
                seen.append(value)
                if seen.count == 2 { break }
            }
            #expect(seen == [4, 10])
            for try await (index, amount) in tens {
                #expect(amount == 6)
                #expect(index > 0)  // the log index of the command that raised it
                break
            }
            // end

            // tutorial: errors
            try await counter.reset()
            do {
                try await counter.reset()
            } catch {
                #expect(error.code == .applicationError)  // the state machine's own error
                #expect(error.message == "already zero")
            }
            // end
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }

    @Test("the compact event content of the tutorial reads back what it wrote, and refuses a wrong length")
    func compactContent() throws {
        let moved = Moved(from: 3, to: 0x0102_0304_0506_0708)
        var bytes = [UInt8](repeating: 0, count: try #require(moved.compactSize))
        bytes.withUnsafeMutableBytes { moved.writeCompact(to: $0) }
        let back = try #require(bytes.withUnsafeBytes { Moved.readCompact(from: $0) })
        #expect(back.payload(kind: 0) == moved.payload(kind: 0))
        #expect(bytes.dropLast().withUnsafeBytes { Moved.readCompact(from: UnsafeRawBufferPointer($0)) } == nil)
    }

    @Test("every Swift block of docs/state-machines.md is in this file, so the tutorial compiles and runs")
    func tutorialCodeBlocksAreHere() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("docs/state-machines.md"), encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        func normalized(_ text: String) -> String {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .joined(separator: "\n")
        }
        let blocks = page.components(separatedBy: "```swift\n").dropFirst().compactMap {
            $0.components(separatedBy: "```").first
        }
        #expect(blocks.count >= 4)
        for block in blocks {
            #expect(normalized(source).contains(normalized(block)), "not in TutorialTests.swift:\n\(block)")
        }
    }
}
