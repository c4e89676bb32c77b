import NIOCore
import Synchronization

/// The timer of open-loop lanes: runs code at an instant on a NIO event loop, waking once for every body due in the
/// same slice of `resolution`: each body runs at the end of its slice, at most `resolution` late. The lanes of a
/// connection share one timer on the connection's own thread, so a wake-up sends every request due in that slice
/// from one loop tick (the client batches them as it batches a closed loop's), and a send needs no hop. A timer
/// costs one scheduled task per slice instead of a Swift task sleeping per request. wrk2's timers have a resolution
/// of 1 ms.
final class CoalescingLaneTimer: Sendable {
    /// The loop the bodies run on.
    let loop: any EventLoop
    /// The width of a slice; zero or less: every body gets its own scheduled task, on time.
    let resolution: Duration
    /// Slices are counted from here.
    let origin: ContinuousClock.Instant
    /// The current time (a parameter for tests).
    let now: @Sendable () -> ContinuousClock.Instant
    /// The bodies waiting in each slice, by slice number.
    private let slices = Mutex<[Int64: [@Sendable () -> Void]]>([:])

    init(
        loop: any EventLoop, resolution: Duration, origin: ContinuousClock.Instant,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.loop = loop
        self.resolution = resolution
        self.origin = origin
        self.now = now
    }

    /// Runs `body` once, at the end of `instant`'s slice (on the next loop turn, never on the caller's stack, when
    /// that has passed).
    func run(at instant: ContinuousClock.Instant, _ body: @escaping @Sendable () -> Void) {
        guard resolution > .zero else {
            schedule(at: instant, body)
            return
        }
        let slice = Int64(((instant - origin) / resolution).rounded(.up))
        let first = slices.withLock { slices -> Bool in
            let first = slices[slice] == nil
            slices[slice, default: []].append(body)
            return first
        }
        guard first else { return }
        schedule(at: origin + resolution * Double(slice)) {
            let bodies = self.slices.withLock { $0.removeValue(forKey: slice) } ?? []
            for body in bodies { body() }
        }
    }

    /// Runs `body` on the loop at `instant` (on the next loop turn when it has passed).
    private func schedule(at instant: ContinuousClock.Instant, _ body: @escaping @Sendable () -> Void) {
        let delay = instant - now()
        guard delay > .zero else {
            loop.execute(body)
            return
        }
        loop.scheduleTask(in: HTTPConnection.timeAmount(delay), body)
    }
}

/// The schedule of an open-loop lane: one send per `interval`, the first at `first`.
struct LaneSchedule: Sendable {
    /// The time between two sends of the lane.
    var interval: Duration
    /// The lane's first slot (lanes are staggered over one interval).
    var first: ContinuousClock.Instant
    /// Wakes the lane at its slots.
    var timer: CoalescingLaneTimer

    /// The slot after `scheduled` for a request that completed at `completed`: the next one, or, when the request
    /// overran it, the first slot after `completed` (the slots in between are skipped; the recorder's corrected
    /// values account for them).
    static func nextSlot(
        after scheduled: ContinuousClock.Instant, completed: ContinuousClock.Instant, interval: Duration
    ) -> ContinuousClock.Instant {
        var next = scheduled + interval
        if next < completed {
            next = next + interval * ((completed - next) / interval).rounded(.up)
        }
        return next
    }
}

/// A lane driven by completion handlers (``LoadDriver/perform(_:connection:completion:)``), so that an operation
/// takes no task and no hop to an executor. ``run()`` returns when the window has ended and the last reply has
/// come, or at once when the calling task is cancelled (a reply still in flight is then ignored).
///
/// - **Closed loop** (no schedule): each reply sends the lane's next request from the thread it arrives on.
/// - **Open loop** (a ``LaneSchedule``): each send waits for its slot on the schedule's timer; a reply sets the next
///   slot (skipping those it overran), as ``LoadRunner``'s task lanes do, and its latency is recorded as corrected
///   for the lane's interval.
final class CompletionLane: Sendable {
    private struct State {
        var generator: WorkloadGenerator
        var finished = false
        var continuation: CheckedContinuation<Void, Never>?
        /// A request is being handed to the driver on this lane's stack.
        var sending = false
        /// Its reply came before the driver returned: the sending loop sends the next one (no recursion).
        var repliedWhileSending = false
        /// Open loop: the slot of the next (or current) send.
        var slot: ContinuousClock.Instant?
    }

    private let state: Mutex<State>
    private let driver: any LoadDriver
    private let connection: Int
    private let recorder: LoadRecorder
    private let end: ContinuousClock.Instant
    private let schedule: LaneSchedule?

    init(
        generator: WorkloadGenerator, driver: any LoadDriver, connection: Int, recorder: LoadRecorder,
        end: ContinuousClock.Instant, schedule: LaneSchedule? = nil
    ) {
        self.state = Mutex(State(generator: generator, slot: schedule?.first))
        self.driver = driver
        self.connection = connection
        self.recorder = recorder
        self.end = end
        self.schedule = schedule
    }

    /// Sends requests until the window ends (or the calling task is cancelled).
    func run() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let cancelled = state.withLock { state -> Bool in
                    if state.finished { return true }
                    state.continuation = continuation
                    return false
                }
                if cancelled {
                    continuation.resume()
                } else if let schedule {
                    wait(until: schedule.first, schedule)
                } else {
                    sendUntilPending()
                }
            }
        } onCancel: {
            finish()
        }
    }

    /// Sends the next request, and goes on sending while replies come back before the driver returns.
    private func sendUntilPending() {
        while true {
            let sent = ContinuousClock.now
            guard let operation = nextOperation(at: sent, sending: true) else { return }
            driver.perform(operation, connection: connection) { result in
                self.completed(result, sent: sent)
            }
            let again = state.withLock { state -> Bool in
                state.sending = false
                defer { state.repliedWhileSending = false }
                return state.repliedWhileSending
            }
            if !again { return }
        }
    }

    /// The lane's next operation, sent at `sent` (`sending`: on the closed loop's sending stack), or `nil` when the
    /// lane is finished or the window has ended; the lane is then finished.
    private func nextOperation(at sent: ContinuousClock.Instant, sending: Bool) -> Operation? {
        let operation = state.withLock { state -> Operation? in
            guard !state.finished, sent < end else { return nil }
            if sending { state.sending = true }
            return state.generator.next()
        }
        if operation == nil { finish() }
        return operation
    }

    private func completed(_ result: Result<OperationOutcome, LoadError>, sent: ContinuousClock.Instant) {
        let completed = ContinuousClock.now
        if let schedule {
            scheduledCompleted(result, sent: sent, completed: completed, schedule)
            return
        }
        let sendingLoopContinues = state.withLock { state -> Bool? in
            if state.finished { return nil }
            if state.sending { state.repliedWhileSending = true }
            return state.sending
        }
        guard let sendingLoopContinues else { return }
        recorder.record(result, sent: sent, completed: completed, expectedInterval: nil)
        if !sendingLoopContinues { sendUntilPending() }
    }

    // MARK: Open loop

    /// Sends at `slot`, or ends the lane when the slot is past the window.
    private func wait(until slot: ContinuousClock.Instant, _ schedule: LaneSchedule) {
        guard slot < end else {
            finish()
            return
        }
        schedule.timer.run(at: slot) { self.sendScheduled() }
    }

    /// The timer's callback: sends one request (the slot was set when the previous one completed).
    private func sendScheduled() {
        let sent = ContinuousClock.now
        guard let operation = nextOperation(at: sent, sending: false) else { return }
        // The reply may come on this stack, before `perform` returns: it only records and sets a timer.
        driver.perform(operation, connection: connection) { result in
            self.completed(result, sent: sent)
        }
    }

    private func scheduledCompleted(
        _ result: Result<OperationOutcome, LoadError>, sent: ContinuousClock.Instant,
        completed: ContinuousClock.Instant, _ schedule: LaneSchedule
    ) {
        let next = state.withLock { state -> ContinuousClock.Instant? in
            guard !state.finished, let slot = state.slot else { return nil }
            let next = LaneSchedule.nextSlot(after: slot, completed: completed, interval: schedule.interval)
            state.slot = next
            return next
        }
        guard let next else { return }
        recorder.record(result, sent: sent, completed: completed, expectedInterval: schedule.interval)
        wait(until: next, schedule)
    }

    /// Ends the lane once: ``run()`` returns.
    private func finish() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            state.finished = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
