// The built-in map (`ReplicatedMap`) at scale: build, snapshot, restore and list a map of `keys` entries.
//
//   swift build -c release --product map-bench && .build/release/map-bench [keys=1000000] [valueBytes=100]
//
// Keys are 16-byte strings ("k" and 15 digits), inserted in a scrambled order, then updated twice (in place, and
// while a copy of the map shares its records); values are `valueBytes` bytes. The
// commands are called directly (no log, no events collected), so the figures are the state machine's own cost.

import BifrostMap
import Foundation

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let count = arguments.count > 0 ? arguments[0] : 1_000_000
let valueBytes = arguments.count > 1 ? arguments[1] : 100
let clock = ContinuousClock()

/// Resident memory, from /proc/self/statm (Linux), in MiB.
func residentMiB() -> Double {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
}

func seconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) + Double(attoseconds) / 1e18
}

func milliseconds(_ duration: Duration) -> String { String(format: "%.1f ms", seconds(duration) * 1_000) }

func microseconds(_ duration: Duration) -> String { String(format: "%.1f µs", seconds(duration) * 1_000_000) }

func key(_ i: Int) -> String {
    let digits = String(i)
    return "k" + String(repeating: "0", count: 15 - digits.count) + digits
}

let context = RaftApplyContext(index: 1, term: 1, time: 0, isLeader: true)
print("map-bench: \(count) keys of 16 bytes, values of \(valueBytes) bytes")
print(String(format: "resident at start: %.0f MiB", residentMiB()))

// Build: one `set` per key, in a scrambled order (a multiplicative permutation of 0..<count).
var map = ReplicatedMap()
let stride = 1_000_003  // prime, coprime with count unless count is a multiple of it
let buildStart = clock.now
for i in 0..<count {
    let n = (i &* stride) % count
    var value = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: valueBytes)
    if valueBytes >= 8 { withUnsafeBytes(of: UInt64(n).littleEndian) { value.replaceSubrange(0..<8, with: $0) } }
    _ = map.set(key: key(n), value: value, context: context)
}
let buildTime = clock.now - buildStart
print("build (\(count) × set): \(milliseconds(buildTime))  [\(Int(Double(count) / seconds(buildTime))) sets/s]")
print(String(format: "resident after build: %.0f MiB", residentMiB()))
precondition(map.count() == UInt64(count))

// Updates: every key once more, in another scrambled order. First while the map alone holds its records (each
// value is written in place), then while a copy of the map is alive, as while a snapshot is being encoded (each
// update allocates a new record and replaces it in the table and the ordered index).
@MainActor func updateAll(round: UInt8) -> Duration {
    let start = clock.now
    for i in 0..<count {
        let n = (i &* 7_919) % count
        let value = [UInt8](repeating: round, count: valueBytes)
        _ = map.set(key: key(n), value: value, context: context)
    }
    return clock.now - start
}
let inPlace = updateAll(round: 1)
print(
    "update (\(count) × set of a present key), in place: \(milliseconds(inPlace))  [\(Int(Double(count) / seconds(inPlace))) sets/s]"
)
let copy = map
let replacing = updateAll(round: 2)
print(
    "update, with a copy of the map alive (records replaced): \(milliseconds(replacing))  [\(Int(Double(count) / seconds(replacing))) sets/s]"
)
precondition(copy.get(key: key(0)) == [UInt8](repeating: 1, count: valueBytes))
precondition(map.get(key: key(0)) == [UInt8](repeating: 2, count: valueBytes))
print(String(format: "resident with the copy: %.0f MiB", residentMiB()))

// Snapshot.
let snapshotStart = clock.now
let image = try map.snapshot()
let snapshotTime = clock.now - snapshotStart
print(
    "snapshot(): \(milliseconds(snapshotTime)), \(image.count) bytes (\(String(format: "%.1f", Double(image.count) / 1_048_576)) MiB, \(String(format: "%.1f", Double(image.count) / Double(count))) bytes/entry)"
)
print(String(format: "resident with the image: %.0f MiB", residentMiB()))

// Restore into a fresh map.
var restored = ReplicatedMap()
let restoreStart = clock.now
try restored.restore(from: image)
let restoreTime = clock.now - restoreStart
print("restore(from:): \(milliseconds(restoreTime))")
print(String(format: "resident with both maps and the image: %.0f MiB", residentMiB()))
precondition(restored.count() == UInt64(count))
let reimage = try restored.snapshot()
precondition(reimage == image, "the restored map's image differs")

// List: pages of 100 at 1,000 scattered cursors, and a walk of the first 100,000 keys page by page.
var listed = 0
let pagesStart = clock.now
for i in 0..<1_000 {
    let page = map.list(prefix: "k", after: key((i &* 7_919) % count), limit: 100)
    listed += page.entries.count
}
let pagesTime = clock.now - pagesStart
print(
    "list, 1,000 pages of 100 at scattered cursors: \(milliseconds(pagesTime)) (\(microseconds(pagesTime / 1_000)) a page)"
)
let prefixStart = clock.now
let narrow = map.list(prefix: "k0000000001234", after: nil, limit: 100)
let prefixTime = clock.now - prefixStart
print("list, a narrow prefix (\(narrow.entries.count) keys): \(microseconds(prefixTime))")
var after: String?
var walked = 0
let walkStart = clock.now
repeat {
    let page = map.list(prefix: "", after: after, limit: 1_000)
    walked += page.entries.count
    after = page.next
} while after != nil && walked < 100_000
let walkTime = clock.now - walkStart
print("list, walking \(walked) keys in pages of 1,000: \(milliseconds(walkTime))")

// For comparison, what one page cost before the ordered index: filter and sort every key.
var all: [String] = []
all.reserveCapacity(count)
var cursor: String?
let collectStart = clock.now
repeat {
    let page = restored.list(prefix: "", after: cursor, limit: 10_000)
    all += page.entries.map(\.key)
    cursor = page.next
} while cursor != nil
let collectTime = clock.now - collectStart
print("list, every key in pages of 10,000: \(milliseconds(collectTime))")
let sortStart = clock.now
let sorted = all.filter { $0.hasPrefix("k") }.sorted()
let sortTime = clock.now - sortStart
print(
    "for comparison, filter + sort of all \(sorted.count) keys (one page before this change): \(milliseconds(sortTime))"
)
print(String(format: "resident at end: %.0f MiB", residentMiB()))
_ = listed
