import NIOCore

/// Coalesces outgoing frames into few socket writes.
///
/// Frames written during one event-loop tick accumulate into one buffer. When it holds `writeBatchBytes`, it
/// goes out at once, so that the peer starts working on those frames while this side produces the rest: with
/// many calls in flight both ends of a connection then work at the same time instead of taking turns. Whatever
/// is left goes out in one write and one flush at the end of the tick.
///
/// Event-loop confined: used only from the channel handler that owns it.
struct FrameOutbox {
    private var pending: ByteBuffer
    private var flushScheduled = false
    private let writeBatchBytes: Int

    init(allocator: ByteBufferAllocator, writeBatchBytes: Int) {
        pending = allocator.buffer(capacity: 4096)
        self.writeBatchBytes = writeBatchBytes
    }

    /// Appends `frame`, writing the batch out if it is full. Returns true for the first frame of a tick: the
    /// caller then schedules ``flush(context:)`` at the end of the tick.
    mutating func enqueue(_ frame: RPCFrame, context: ChannelHandlerContext) -> Bool {
        frame.write(to: &pending)
        if pending.readableBytes >= writeBatchBytes {
            flush(context: context)
            return false
        }
        if flushScheduled { return false }
        flushScheduled = true
        return true
    }

    /// Writes and flushes everything enqueued.
    mutating func flush(context: ChannelHandlerContext) {
        guard pending.readableBytes > 0 else { return }
        let out = pending
        pending = context.channel.allocator.buffer(capacity: Swift.max(4096, out.readableBytes))
        context.writeAndFlush(NIOAny(out), promise: nil)
    }

    /// Called by the end-of-tick flush the caller scheduled.
    mutating func scheduledFlush(context: ChannelHandlerContext) {
        flushScheduled = false
        flush(context: context)
    }
}
