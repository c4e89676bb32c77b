import Synchronization

/// A closed-loop lane driven by completion handlers (``LoadDriver/perform(_:connection:completion:)``): each
/// reply sends the lane's next request from the thread it arrives on, so an operation takes no task and no hop
/// to an executor. ``run()`` returns when the window has ended and the last reply has come, or at once when the
/// calling task is cancelled (a reply still in flight is then ignored).
final class CompletionLane: Sendable {
    private struct State {
        var generator: WorkloadGenerator
        var finished = false
        var continuation: CheckedContinuation<Void, Never>?
        /// A request is being handed to the driver on this lane's stack.
        var sending = false
        /// Its reply came before the driver returned: the sending loop sends the next one (no recursion).
        var repliedWhileSending = false
    }

    private let state: Mutex<State>
    private let driver: any LoadDriver
    private let connection: Int
    private let recorder: LoadRecorder
    private let end: ContinuousClock.Instant

    init(
        generator: WorkloadGenerator, driver: any LoadDriver, connection: Int, recorder: LoadRecorder,
        end: ContinuousClock.Instant
    ) {
        self.state = Mutex(State(generator: generator))
        self.driver = driver
        self.connection = connection
        self.recorder = recorder
        self.end = end
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
                if cancelled { continuation.resume() } else { sendUntilPending() }
            }
        } onCancel: {
            finish()
        }
    }

    /// Sends the next request, and goes on sending while replies come back before the driver returns.
    private func sendUntilPending() {
        while true {
            let sent = ContinuousClock.now
            let operation = state.withLock { state -> Operation? in
                guard !state.finished, sent < end else { return nil }
                state.sending = true
                return state.generator.next()
            }
            guard let operation else {
                finish()
                return
            }
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

    private func completed(_ result: Result<OperationOutcome, LoadError>, sent: ContinuousClock.Instant) {
        let completed = ContinuousClock.now
        let sendingLoopContinues = state.withLock { state -> Bool? in
            if state.finished { return nil }
            if state.sending { state.repliedWhileSending = true }
            return state.sending
        }
        guard let sendingLoopContinues else { return }
        recorder.record(result, sent: sent, completed: completed, expectedInterval: nil)
        if !sendingLoopContinues { sendUntilPending() }
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
