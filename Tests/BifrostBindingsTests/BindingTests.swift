import BifrostBindings
import Testing

// MARK: Fixtures

/// A `final class` box around a dictionary: the value of a reference binding.
final class Box: Sendable {
    let entries: [String: Int]

    init(_ entries: [String: Int] = [:]) {
        self.entries = entries
    }
}

/// A shared mutable object for reference bindings: child tasks mutate it, the scope sees the result.
actor Counter {
    private(set) var count = 0

    func increment() {
        count += 1
    }
}

/// An actor to hop to: it reads a binding on its own executor.
actor Hop {
    func read<Value>(_ binding: Binding<Value>) -> Value {
        binding.value
    }
}

/// Releases every party once all of them have arrived, so that their scopes are live at the same time.
actor Barrier {
    private let parties: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(parties: Int) {
        self.parties = parties
    }

    func arriveAndWait() async {
        arrived += 1
        if arrived == parties {
            for continuation in waiting {
                continuation.resume()
            }
            waiting = []
        } else {
            await withCheckedContinuation { waiting.append($0) }
        }
    }
}

struct Failure: Error {}

enum Node {
    static let isLeader = Binding(default: false)
    static let term = Binding<UInt64>(default: 0)
    static let name = Binding(default: "none")
    static let taskID = Binding<UInt64>(default: .max)
    static let box = ReferenceBinding(default: Box())
    static let counter = ReferenceBinding(default: Counter())
}

/// A binding declared as a global `let`.
let globalLevel = Binding(default: 3)

/// Synchronous code far from the scope: it only knows the binding.
func isLeaderNow() -> Bool {
    Node.isLeader.value
}

// MARK: Tests

@Suite("Bindings")
struct BindingTests {
    @Test func defaultOutsideAnyScope() {
        #expect(Node.isLeader.value == false)
        #expect(Node.term.value == 0)
        #expect(Node.name.value == "none")
        #expect(globalLevel.value == 3)
        #expect(Node.term.defaultValue == 0)
        Node.term.withValue(9) {}
        #expect(Node.term.value == 0)
    }

    @Test func innerScopeShadowsOuterAndRestoresIt() async {
        Node.term.withValue(1) {
            #expect(Node.term.value == 1)
            Node.term.withValue(2) {
                #expect(Node.term.value == 2)
            }
            #expect(Node.term.value == 1)
        }
        #expect(Node.term.value == 0)

        await Node.term.withValue(1) {
            await Node.term.withValue(2) {
                await Task.yield()
                #expect(Node.term.value == 2)
            }
            #expect(Node.term.value == 1)
        }
        #expect(Node.term.value == 0)
    }

    @Test func scopeIsRestoredWhenTheBodyThrows() async {
        Node.term.withValue(1) {
            #expect(throws: Failure.self) {
                try Node.term.withValue(2) { throw Failure() }
            }
            #expect(Node.term.value == 1)
        }

        await Node.term.withValue(1) {
            do {
                try await Node.term.withValue(2) {
                    await Task.yield()
                    throw Failure()
                }
                Issue.record("the scope did not throw")
            } catch {
                #expect(error is Failure)
            }
            #expect(Node.term.value == 1)
        }
        #expect(Node.term.value == 0)
    }

    @Test func boundValueSurvivesSuspensionsAndActorHops() async throws {
        let first = Hop()
        let second = Hop()
        try await Node.term.withValue(42) {
            await Task.yield()
            #expect(Node.term.value == 42)
            #expect(await first.read(Node.term) == 42)
            try await Task.sleep(for: .milliseconds(1))
            #expect(Node.term.value == 42)
            #expect(await second.read(Node.term) == 42)
            #expect(Node.term.value == 42)
        }
        #expect(await first.read(Node.term) == 0)
    }

    @Test func childAndUnstructuredTasksInheritTheBindingButDetachedTasksDoNot() async {
        await Node.name.withValue("scoped") {
            async let child = Node.name.value
            #expect(await child == "scoped")

            let fromGroup = await withTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        await Task.yield()
                        return Node.name.value
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(fromGroup == Array(repeating: "scoped", count: 4))

            let unstructured = Task {
                await Task.yield()
                return Node.name.value
            }
            #expect(await unstructured.value == "scoped")

            let detached = Task.detached { Node.name.value }
            #expect(await detached.value == "none")
        }
    }

    @Test func unstructuredTaskKeepsTheBindingAfterTheScopeEnds() async {
        let (signal, continuation) = AsyncStream<Void>.makeStream()
        let task = Node.name.withValue("copied") {
            Task {
                for await _ in signal { break }
                return Node.name.value
            }
        }
        #expect(Node.name.value == "none")
        continuation.yield()
        #expect(await task.value == "copied")
    }

    @Test func thousandConcurrentTasksEachReadTheirOwnValue() async {
        let tasks = 1_000
        let hops = [Hop(), Hop(), Hop()]
        let barrier = Barrier(parties: tasks + 1)
        let binding = Node.taskID
        let mismatches = await withTaskGroup(of: Int.self) { group in
            for index in 0..<tasks {
                group.addTask {
                    let own = UInt64(index)
                    return await binding.withValue(own) {
                        var wrong = 0
                        // Every scope is live before anyone reads.
                        await barrier.arriveAndWait()
                        for round in 0..<5 {
                            await Task.yield()
                            if binding.value != own { wrong += 1 }
                            if await hops[(index + round) % hops.count].read(binding) != own { wrong += 1 }
                            if binding.value != own { wrong += 1 }
                        }
                        return wrong
                    }
                }
            }
            // A task that never binds reads the default throughout.
            group.addTask {
                var wrong = 0
                await barrier.arriveAndWait()
                for round in 0..<20 {
                    await Task.yield()
                    if binding.value != .max { wrong += 1 }
                    if await hops[round % hops.count].read(binding) != .max { wrong += 1 }
                }
                return wrong
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        #expect(binding.value == .max)
    }

    @Test func referenceBindingReturnsOneSharedObjectPerScope() async {
        let outside = Node.box.value
        #expect(Node.box.value === outside)

        let first = Box(["a": 1])
        let seen = await Node.box.withValue(first) {
            let read = Node.box.value
            await Task.yield()
            #expect(read === first)
            #expect(Node.box.value === read)

            async let child = Node.box.value
            #expect(await child === first)
            let fromGroup = await withTaskGroup(of: Box.self) { group in
                for _ in 0..<4 {
                    group.addTask { Node.box.value }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(fromGroup.count == 4)
            #expect(fromGroup.allSatisfy { $0 === first })
            return read
        }

        let second = await Node.box.withValue(Box(["a": 1])) {
            await Task.yield()
            return Node.box.value
        }
        #expect(seen !== second)
        #expect(seen !== outside)
        #expect(Node.box.value === outside)
    }

    @Test func concurrentReferenceScopesStayApart() async {
        let objects = (0..<8).map { Box(["scope": $0]) }
        let allOwn = await withTaskGroup(of: Bool.self) { group in
            for object in objects {
                group.addTask {
                    await Node.box.withValue(object) {
                        await Task.yield()
                        return Node.box.value === object
                    }
                }
            }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(allOwn)
    }

    @Test func childTasksMutateTheSharedObject() async {
        let counter = Counter()
        let total = await Node.counter.withValue(counter) {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<10 {
                    group.addTask { await Node.counter.value.increment() }
                }
            }
            return await Node.counter.value.count
        }
        #expect(total == 10)
        #expect(await Node.counter.value.count == 0)
    }

    @Test func synchronousScopeInsideAsyncCode() async {
        await Task.yield()
        let inside = Node.isLeader.withValue(true) { isLeaderNow() }
        #expect(inside)
        #expect(!isLeaderNow())

        let task = Node.isLeader.withValue(true) {
            Task { isLeaderNow() }
        }
        #expect(await task.value)

        await Node.term.withValue(1) {
            let inner = Node.term.withValue(2) { Node.term.value }
            #expect(inner == 2)
            await Task.yield()
            #expect(Node.term.value == 1)
        }
    }

    @Test func bindingsOfTheSameTypeAreIndependent() async {
        let first = Binding(default: 0)
        let second = Binding(default: 0)
        await first.withValue(1) {
            await second.withValue(2) {
                await Task.yield()
                #expect(first.value == 1)
                #expect(second.value == 2)
                #expect(globalLevel.value == 3)
            }
            #expect(second.value == 0)
        }
        globalLevel.withValue(4) {
            #expect(globalLevel.value == 4)
            #expect(first.value == 0)
        }
    }

    @Test func withBindingsBindsSeveralAtOnce() async throws {
        let pair = withBindings((Node.isLeader, true), (Node.term, 7)) {
            (Node.isLeader.value, Node.term.value)
        }
        #expect(pair.0)
        #expect(pair.1 == 7)

        let box = Box()
        let triple = try await withBindings((Node.isLeader, true), (Node.term, 8), (Node.box, box)) {
            try await Task.sleep(for: .milliseconds(1))
            return (Node.isLeader.value, Node.term.value, Node.box.value)
        }
        #expect(triple.0)
        #expect(triple.1 == 8)
        #expect(triple.2 === box)
        #expect(!Node.isLeader.value)
        #expect(Node.term.value == 0)
    }
}
