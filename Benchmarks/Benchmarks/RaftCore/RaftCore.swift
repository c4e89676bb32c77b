// Committed entries per second of an in-memory 3-node RaftCore cluster in one process: no I/O, no network, no
// codec. Each benchmark iteration commits (and applies on every node) 1,024 entries of 100-byte payloads, proposed
// in batches of 1, 64 or 1,024 entries; entries/s = iterations/s x 1,024.

import Benchmark
import BifrostRaftCore

/// Three cores wired together by function calls. The shell follows the ordering contract: persist, send, apply,
/// advance. Logs are compacted after every iteration so memory stays flat.
struct InProcessCluster {
    var cores: [RaftCore<MemoryRaftStorage>] = []
    var queue: [RaftMessage] = []
    var appliedEntries = 0

    init() {
        let configuration = Configuration(voters: [1, 2, 3])
        for id in NodeID(1)...3 {
            cores.append(
                try! RaftCore(
                    id: id,
                    storage: MemoryRaftStorage(configuration: configuration),
                    settings: RaftSettings(),
                    randomSeed: id
                )
            )
        }
        while leaderIndex == nil {
            for index in cores.indices { cores[index].tick() }
            pump()
        }
    }

    var leaderIndex: Int? { cores.indices.first { cores[$0].role == .leader } }

    mutating func pump() {
        var busy = true
        while busy {
            busy = false
            for index in cores.indices where cores[index].hasReady {
                busy = true
                let ready = cores[index].ready()
                if let snapshot = ready.snapshot { cores[index].storage.applySnapshot(snapshot) }
                cores[index].storage.append(ready.entries)
                if let hardState = ready.hardState { cores[index].storage.hardState = hardState }
                queue.append(contentsOf: ready.messages)
                appliedEntries += ready.committedEntries.count
                cores[index].advance(ready)
            }
            if !queue.isEmpty {
                busy = true
                let messages = queue
                queue.removeAll(keepingCapacity: true)
                for message in messages { cores[Int(message.to) - 1].step(message) }
            }
        }
    }

    /// Proposes `total` entries in batches of `batch` and runs until all are applied everywhere.
    mutating func commit(total: Int, batch: Int, payload: [UInt8]) {
        guard let leader = leaderIndex else { return }
        let target = appliedEntries + 3 * total
        var proposed = 0
        let batchPayloads = [[UInt8]](repeating: payload, count: batch)
        while proposed < total {
            _ = try? cores[leader].propose(batchPayloads)
            proposed += batch
            pump()
        }
        var rounds = 0
        while appliedEntries < target && rounds < 1_000 {
            pump()
            rounds += 1
        }
        for index in cores.indices {
            let applied = cores[index].appliedIndex
            if let meta = cores[index].snapshotMetadata(at: applied) {
                try? cores[index].storage.createSnapshot(meta, data: [])
            }
        }
    }
}

let entriesPerIteration = 1_024

let benchmarks: @Sendable () -> Void = {
    let payload = [UInt8](repeating: 0x5A, count: 100)
    for batch in [1, 64, 1_024] {
        Benchmark(
            "RaftCore 3-node commit, \(entriesPerIteration) entries in batches of \(batch)",
            configuration: .init(
                metrics: [.wallClock, .throughput, .mallocCountTotal],
                maxDuration: .seconds(3),
                maxIterations: 1_000
            )
        ) { benchmark in
            var cluster = InProcessCluster()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                cluster.commit(total: entriesPerIteration, batch: batch, payload: payload)
            }
            benchmark.stopMeasurement()
            blackHole(cluster.appliedEntries)
        }
    }
}
