import NIOCore
import Synchronization

/// Work handed to an event loop from other threads, in batches: the first item of a batch schedules one drain on
/// the loop, and items that arrive before the drain runs join it. Many concurrent producers then cost one
/// wake-up of the loop and one scheduled closure, not one each.
final class LoopInbox<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var drainScheduled = false
    }

    private let state = Mutex(State())

    /// Adds `item`; returns true if the caller must schedule a drain (``drain()`` on the loop).
    func enqueue(_ item: Element) -> Bool {
        state.withLock { state in
            state.items.append(item)
            if state.drainScheduled { return false }
            state.drainScheduled = true
            return true
        }
    }

    /// Takes every waiting item, in the order they arrived.
    func drain() -> [Element] {
        state.withLock { state in
            state.drainScheduled = false
            defer { state.items.removeAll(keepingCapacity: true) }
            return state.items
        }
    }
}
