// What a node spends applying one replicated `ReplicatedMap.set`: the whole `MasterStateMachine.apply` path a
// follower runs for each committed entry (the log command's decoding, the session table, the argument's decoding,
// the table update, the change event and the result's encoding), with no log, network or event buffer.
//
//   swift build -c release --product apply-bench && .build/release/apply-bench [entries=2000000] [keyspace=100000]
//
// Keys are 16 bytes, values 100 bytes, chosen uniformly from the keyspace (as `bifrost-loadgen`'s default write
// workload), from 256 sessions whose acknowledged mark trails their sequence by one, as a closed-loop client's does.

import BifrostMap
import BifrostRaft
import BifrostRaftCore
import BifrostWire
import Foundation

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let count = arguments.count > 0 ? arguments[0] : 2_000_000
let keyspace = arguments.count > 1 ? arguments[1] : 100_000
let sessions = 256
let clock = ContinuousClock()

func key(_ i: Int) -> String {
    let digits = String(i)
    return "k" + String(repeating: "0", count: 15 - digits.count) + digits
}

func setArgument(key: String, value: [UInt8]) -> [UInt8] {
    var writer = WireWriter(capacity: 24 + key.utf8.count + value.count)
    writer.writeFramed { frame in
        "key".encode(to: &frame)
        frame.writeFramed { key.encode(to: &$0) }
        "value".encode(to: &frame)
        frame.writeFramed { value.encode(to: &$0) }
    }
    return writer.buffer.readBytes(length: writer.buffer.readableBytes) ?? []
}

let setFunction = ReplicatedMap.functionIDs["ReplicatedMap.set(key:value:context:)"] ?? 0
var master = MasterStateMachine()
do { try master.register(ReplicatedMap(), id: ReplicatedMap.defaultID) } catch { fatalError("\(error)") }

var index: UInt64 = 0
@MainActor func entry(_ body: RaftLogCommand.Body) -> Entry {
    index += 1
    return Entry(index: index, term: 1, payload: Wire.encodeToBytes(RaftLogCommand(time: index, body: body)))
}
var sessionIDs: [UInt64] = []
for _ in 0..<sessions {
    let open = entry(.openSession)
    _ = master.apply(open, isLeader: false)
    sessionIDs.append(open.index)
}

// Entries built ahead of time (the log's bytes), so that only applying is timed.
var generator = SystemRandomNumberGenerator()
let value = [UInt8](repeating: 7, count: 100)
var sequences = [UInt64](repeating: 0, count: sessions)
@MainActor func makeEntries(_ n: Int) -> [Entry] {
    var entries: [Entry] = []
    entries.reserveCapacity(n)
    for i in 0..<n {
        let s = i % sessions
        sequences[s] += 1
        let request = RaftCommandRequest(
            session: sessionIDs[s], sequence: sequences[s], acknowledged: sequences[s] - 1,
            stateMachine: ReplicatedMap.defaultID, function: setFunction,
            argument: setArgument(key: key(Int.random(in: 0..<keyspace, using: &generator)), value: value))
        entries.append(entry(.user(request)))
    }
    return entries
}

// Fill the keyspace first (inserts), then time overwrites in rounds.
for batch in stride(from: 0, to: keyspace, by: 100_000) {
    for e in makeEntries(min(100_000, keyspace - batch)) { _ = master.apply(e, isLeader: false) }
}
print("apply-bench: \(count) sets, keyspace \(keyspace), \(sessions) sessions")
let round = 200_000
var best = Double.infinity
var total = 0.0
var applied = 0
while applied < count {
    let entries = makeEntries(min(round, count - applied))
    // As the node applies: the replies go into one array, reused from entry to entry.
    var replies: [RaftReply] = []
    let start = clock.now
    for e in entries {
        replies.removeAll(keepingCapacity: true)
        master.apply(e, isLeader: false, into: &replies)
        if case .failure(let error) = replies.last { fatalError("\(error)") }
    }
    let (s, atto) = (clock.now - start).components
    let ns = (Double(s) * 1e9 + Double(atto) / 1e9) / Double(entries.count)
    best = min(best, ns)
    total += ns * Double(entries.count)
    applied += entries.count
}
print(String(format: "apply: mean %.0f ns per entry, best round %.0f ns", total / Double(applied), best))
