import NIOCore

/// Runs Swift tasks on a NIO event loop, so that a handler started from a channel handler stays on that
/// channel's thread until it suspends on something else (no thread hop per call).
///
/// Callers get one for a client connection from ``RPCClient/executor(for:)``: a task that prefers it runs on the
/// connection's thread, so its calls are written and their replies resumed there, with no hop to the cooperative
/// pool and back.
public final class EventLoopTaskExecutor: TaskExecutor {
    /// The loop the tasks run on.
    public let eventLoop: any EventLoop
    /// Jobs enqueued together (the replies of one socket read resume many tasks) run from one scheduled drain.
    private let jobs = LoopInbox<UnownedJob>()

    /// An executor of `eventLoop`.
    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `job` on the event loop.
    public func enqueue(_ job: consuming ExecutorJob) {
        guard jobs.enqueue(UnownedJob(job)) else { return }
        eventLoop.execute {
            let executor = self.asUnownedTaskExecutor()
            for job in self.jobs.drain() { job.runSynchronously(on: executor) }
        }
    }
}
