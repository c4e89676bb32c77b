import BifrostMap
import BifrostNodeTestKit
import BifrostRaftCore
import BifrostStorage
import Foundation
import Testing

@Suite("MapClient end to end")
struct MapClientEndToEndTests {
    @Test("MapClient drives a single-node cluster: commands, queries, pages and subscriptions")
    func singleNode() async throws {
        try await SingleNodeCluster.with(stateMachines: [(ReplicatedMap.defaultID, ReplicatedMap())]) { cluster in
            let client = cluster.client
            let map = MapClient(raft: client, stateMachine: ReplicatedMap.defaultID)
            let kInserted = try await map.onKeyInserted("k")
            let inserted = try await map.onInserted()
            let kRemoved = try await map.onKeyRemoved("k")
            let kChanged = try await map.onChanged("k")

            #expect(try await map.set(key: "other", value: [0]) == nil)
            #expect(try await map.set(key: "k", value: [1]) == nil)
            #expect(try await map.set(key: "k", value: [2]) == [1])
            #expect(try await map.insertIfAbsent(key: "k", value: [3]) == [2])
            #expect(
                try await map.compareAndSwap(key: "k", expected: [9], new: [4]) == MapSwap(swapped: false, current: [2])
            )
            #expect(
                try await map.compareAndSwap(key: "k", expected: [2], new: [4]) == MapSwap(swapped: true, current: [4]))
            #expect(try await map.get(key: "k") == [4])
            #expect(try await map.get(key: "k", consistency: .stale) == [4])
            #expect(try await map.contains(key: "k"))
            #expect(try await map.count() == 2)
            #expect(try await map.remove(key: "k") == [4])
            #expect(try await !map.contains(key: "k", consistency: .lease))
            #expect(try await map.putAll((0..<25).map { MapEntry(key: "p/\($0 + 10)", value: [UInt8($0)]) }) == 25)
            var keys: [String] = []
            var after: String?
            repeat {
                let page = try await map.list(prefix: "p/", after: after, limit: 10)
                keys += page.entries.map(\.key)
                after = page.next
            } while after != nil
            #expect(keys == (10..<35).map { "p/\($0)" })
            #expect(try await map.clear() == 26)
            #expect(try await map.count() == 0)

            // The pattern subscription sees only inserts of "k": the first set (the CAS was an update).
            var index: UInt64 = 0
            for try await (eventIndex, value) in kInserted {
                #expect(value == [1])
                index = eventIndex
                break
            }
            #expect(index > 0)
            var seen: [MapEntry] = []
            for try await (_, entry) in inserted {
                seen.append(entry)
                if seen.count == 2 { break }
            }
            #expect(seen == [MapEntry(key: "other", value: [0]), MapEntry(key: "k", value: [1])])
            for try await (eventIndex, value) in kRemoved {
                #expect(value == [4])
                #expect(eventIndex > index)
                break
            }
            var changes: [MapChange] = []
            for try await (_, change) in kChanged {
                changes.append(change)
                if changes.count == 4 { break }
            }
            #expect(
                changes == [
                    MapChange(key: "k", old: nil, new: [1]), MapChange(key: "k", old: [1], new: [2]),
                    MapChange(key: "k", old: [2], new: [4]), MapChange(key: "k", old: [4], new: nil),
                ])
        }
    }
}
