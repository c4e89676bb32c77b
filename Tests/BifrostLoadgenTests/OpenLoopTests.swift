import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import BifrostLoadgenKit

@Suite("Open loop: slots and timers")
struct OpenLoopTests {
    static let origin = ContinuousClock.now

    static func at(_ milliseconds: Double) -> ContinuousClock.Instant {
        origin + .microseconds(Int64(milliseconds * 1000))
    }

    @Test("the next slot follows the scheduled one; a request that overran slots skips them, never sends early")
    func nextSlot() {
        let interval = Duration.milliseconds(2)
        // On time: the next slot.
        #expect(LaneSchedule.nextSlot(after: Self.at(10), completed: Self.at(11), interval: interval) == Self.at(12))
        // Completed exactly at the next slot: that slot is still taken.
        #expect(LaneSchedule.nextSlot(after: Self.at(10), completed: Self.at(12), interval: interval) == Self.at(12))
        // Overran 12 and 14: the first slot after the reply, 16, on the lane's own grid.
        #expect(LaneSchedule.nextSlot(after: Self.at(10), completed: Self.at(15), interval: interval) == Self.at(16))
        #expect(LaneSchedule.nextSlot(after: Self.at(10), completed: Self.at(16), interval: interval) == Self.at(16))
        #expect(
            LaneSchedule.nextSlot(after: Self.at(10), completed: Self.at(16.001), interval: interval) == Self.at(18))
    }

    @Test("the timer resolution is 1 ms, or a quarter of a short interval")
    func resolution() {
        #expect(LoadRunner.timerResolution(interval: .milliseconds(64)) == .milliseconds(1))
        #expect(LoadRunner.timerResolution(interval: .milliseconds(2)) == .microseconds(500))
    }

    /// An embedded loop and a clock that moves with its virtual time, from the origin.
    final class VirtualTime: Sendable {
        let loop = EmbeddedEventLoop()
        private let elapsed = Mutex(Duration.zero)

        func now() -> ContinuousClock.Instant { OpenLoopTests.origin + elapsed.withLock { $0 } }

        func advance(microseconds: Int64) {
            elapsed.withLock { $0 += .microseconds(microseconds) }
            loop.advanceTime(by: .microseconds(microseconds))
        }

        func timer(resolution: Duration) -> CoalescingLaneTimer {
            CoalescingLaneTimer(loop: loop, resolution: resolution, origin: OpenLoopTests.origin, now: now)
        }
    }

    /// The names of the bodies that ran, in order.
    final class Fired: Sendable {
        let names = Mutex<[String]>([])
        func record(_ name: String) -> @Sendable () -> Void {
            { self.names.withLock { $0.append(name) } }
        }

        func take() -> [String] {
            names.withLock { names in
                defer { names.removeAll() }
                return names
            }
        }
    }

    @Test("bodies due in one slice run together at its end: never early, at most one resolution late")
    func coalescing() {
        let time = VirtualTime()
        let timer = time.timer(resolution: .milliseconds(1))
        let fired = Fired()
        timer.run(at: Self.at(0.2), fired.record("a"))
        timer.run(at: Self.at(0.9), fired.record("b"))
        timer.run(at: Self.at(1.0), fired.record("c"))
        timer.run(at: Self.at(1.3), fired.record("d"))
        // Nothing runs on the caller's stack, or before the end of its slice.
        #expect(fired.take() == [])
        time.advance(microseconds: 999)
        #expect(fired.take() == [])
        // The first slice, (0, 1 ms], in the order the bodies were given.
        time.advance(microseconds: 1)
        #expect(fired.take() == ["a", "b", "c"])
        time.advance(microseconds: 999)
        #expect(fired.take() == [])
        time.advance(microseconds: 1)
        #expect(fired.take() == ["d"])
        // A slice already fired takes a new body again; a past instant runs on the next loop turn.
        timer.run(at: Self.at(0.5), fired.record("late"))
        #expect(fired.take() == [])
        time.loop.run()
        #expect(fired.take() == ["late"])
    }

    @Test("with no resolution, every body runs at its own instant")
    func exact() {
        let time = VirtualTime()
        let timer = time.timer(resolution: .zero)
        let fired = Fired()
        timer.run(at: Self.at(0.2), fired.record("a"))
        timer.run(at: Self.at(0.7), fired.record("b"))
        time.advance(microseconds: 199)
        #expect(fired.take() == [])
        time.advance(microseconds: 1)
        #expect(fired.take() == ["a"])
        time.advance(microseconds: 500)
        #expect(fired.take() == ["b"])
    }
}
