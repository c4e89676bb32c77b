import NIOCore

/// One timer for all the call deadlines of a connection. Starting or finishing a call costs no timer
/// operation (NIO's `Scheduled.cancel()` searches a heap under a lock, which was a fifth of the CPU of a busy
/// connection): the timer fires at the earliest deadline it was asked for, the owner sweeps the expired calls,
/// and re-arms it for the earliest deadline left.
///
/// Event-loop confined: used only by the channel handler that owns it.
struct DeadlineTimer {
    private var scheduled: Scheduled<Void>?
    private var firesAt: NIODeadline?

    /// Whether the timer must be re-armed to fire by `deadline` (callers skip building the fire closure when not).
    func needsArming(by deadline: NIODeadline) -> Bool {
        guard let firesAt else { return true }
        return deadline < firesAt
    }

    /// Makes sure the timer fires no later than `deadline`; `fire` runs on the loop when it does.
    mutating func arm(by deadline: NIODeadline, on loop: any EventLoop, _ fire: @escaping () -> Void) {
        if let firesAt, firesAt <= deadline { return }
        scheduled?.cancel()
        firesAt = deadline
        scheduled = loop.assumeIsolated().scheduleTask(deadline: deadline, fire)
    }

    /// Records that the timer fired; the owner re-arms it if deadlines remain.
    mutating func fired() {
        scheduled = nil
        firesAt = nil
    }

    /// Stops the timer.
    mutating func cancel() {
        scheduled?.cancel()
        fired()
    }
}
