import NIOCore

/// Coalesces outgoing frames: every frame written during one event-loop tick goes out in a single write and a
/// single flush, instead of one syscall per message.
///
/// Event-loop confined: used only from the channel handler that owns it.
struct FrameOutbox {
    private var pending: ByteBuffer
    private var flushScheduled = false

    init(allocator: ByteBufferAllocator) {
        pending = allocator.buffer(capacity: 4096)
    }

    /// Appends `frame`. Returns true for the first frame of a tick: the caller then schedules ``flush(context:)``
    /// at the end of the tick.
    mutating func enqueue(_ frame: RPCFrame) -> Bool {
        frame.write(to: &pending)
        if flushScheduled { return false }
        flushScheduled = true
        return true
    }

    /// Writes and flushes everything enqueued.
    mutating func flush(context: ChannelHandlerContext) {
        flushScheduled = false
        guard pending.readableBytes > 0 else { return }
        let out = pending
        pending = context.channel.allocator.buffer(capacity: Swift.max(4096, out.readableBytes))
        context.writeAndFlush(NIOAny(out), promise: nil)
    }
}
