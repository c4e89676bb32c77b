/// When a leader proposes the client commands it has gathered: the leader's batching policy, as a value type that
/// takes the driver's observations and returns decisions (no clock, no timer: the driver passes the time in and
/// wakes up at the deadlines it is given).
///
/// Without a window, a leader proposes what it has as soon as it has it, while earlier batches are still being
/// written and replicated. Under a closed loop (each client sends its next command when the last one is answered)
/// the clients then split into two cohorts that take turns: the commands that arrive while batch *r* is in flight
/// make batch *r + 1*, and the clients that batch *r* answers come back while *r + 1* is in flight and wait for
/// *r + 2*. Every client waits about two rounds per command, and each round (a log write and its sync on every
/// node, the appends and their acknowledgements) carries half of the clients.
///
/// With a window, a leader holds new commands while a batch of its own is uncommitted. When everything it proposed
/// has committed (and been answered), it waits for the clients it answered: it proposes once the commands pending
/// reach those it held plus one per command answered (the ``Window/target``), or at the window's deadline,
/// ``Settings/maxWait`` after it opened. The cohorts merge: each round carries every client, and its cost is
/// shared by twice as many commands.
///
/// The price is latency for traffic that does not come back at once (clients that pause between commands, an
/// open loop): a command may wait up to ``Settings/maxWait`` for others. A lone client never waits (its next
/// command is the whole target). `docs/raft.md` ("Proposal window") has the measurements.
public struct ProposalWindow: Sendable, Equatable {
    /// The policy's knobs.
    public struct Settings: Sendable, Equatable {
        /// The longest a window stays open, in nanoseconds; 0 turns the window off (the leader proposes every
        /// command as soon as it arrives, and pipelines batches). Default: 1 ms, about twice a loaded leader's
        /// turnaround on this project's 2-core machine (apply and answer a batch of 64, the clients send again,
        /// the commands are read: 0.4 to 0.6 ms).
        public var maxWait: UInt64 = 1_000_000

        /// The defaults.
        public init() {}

        /// The window turned off.
        public static var off: Settings {
            var settings = Settings()
            settings.maxWait = 0
            return settings
        }
    }

    /// An open window: the leader proposes when ``target`` commands are pending, or at ``deadline``.
    public struct Window: Sendable, Equatable {
        /// The commands that were pending when the window opened (held while the batch was in flight).
        public var held: Int
        /// The commands the committed batches answered: one client each, expected back.
        public var answered: Int
        /// When the window opened (nanoseconds, on the driver's clock).
        public var opened: UInt64
        /// When the window closes anyway.
        public var deadline: UInt64

        /// The pending commands that close the window: those held, plus one per command answered.
        public var target: Int { held + answered }
    }

    /// How a window closed.
    public enum Closing: Sendable, Equatable {
        /// Every client answered came back (the pending commands reached the target).
        case target
        /// The deadline passed first.
        case deadline
    }

    /// The knobs.
    public let settings: Settings
    /// Commands proposed since everything this leader proposed was last committed: the clients a window expects.
    public private(set) var inFlight = 0
    /// The open window, if any.
    public private(set) var window: Window?

    /// A policy with `settings`.
    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Whether the window is on (``Settings/maxWait`` above 0).
    public var isOn: Bool { settings.maxWait > 0 }

    /// Whether the leader proposes its `pending` commands (`pending` > 0) now, and the window this closes, if
    /// any. `uncommitted`: some entry of the leader's log is not committed yet.
    public mutating func shouldPropose(
        pending: Int, uncommitted: Bool, now: UInt64
    ) -> (propose: Bool, closed: (window: Window, closing: Closing)?) {
        guard isOn else { return (true, nil) }
        if uncommitted { return (false, nil) }
        guard let open = window else { return (true, nil) }
        let closing: Closing
        if pending >= open.target {
            closing = .target
        } else if now >= open.deadline {
            closing = .deadline
        } else {
            return (false, nil)
        }
        window = nil
        return (true, (open, closing))
    }

    /// The leader proposed `count` commands.
    public mutating func proposed(_ count: Int) {
        inFlight += count
    }

    /// Everything the leader proposed is committed (and answered), with `pending` commands gathered meanwhile.
    /// Returns the deadline of the window this opens, for the driver to wake up at; `nil` when none opens (the
    /// window is off, or nothing was proposed since the last one).
    public mutating func committed(pending: Int, now: UInt64) -> UInt64? {
        guard inFlight > 0 else { return nil }
        let answered = inFlight
        inFlight = 0
        guard isOn else { return nil }
        let deadline = now + settings.maxWait
        window = Window(held: pending, answered: answered, opened: now, deadline: deadline)
        return deadline
    }

    /// The node stopped being the leader, or became it: nothing is in flight and no window is open.
    public mutating func reset() {
        inFlight = 0
        window = nil
    }
}
