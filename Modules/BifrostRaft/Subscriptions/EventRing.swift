/// The replay buffer's storage: the newest events, oldest first, their contents written as bytes into one ring of
/// memory.
///
/// Each event has a fixed-size slot (position, state machine, kind, and where its bytes are) in a ring of slots, and
/// its bytes in a byte ring: the pattern and payload of an event raised with bytes, or the compact form of a
/// ``RaftEventContent`` that has one (``RaftEventContent/compactSize``). Recording an event copies its bytes in at
/// the write end; evicting the oldest only moves the read end. No object per event is allocated, kept, or freed
/// thousands of events later, out of the cache: the writes go forward through memory, as a log's do.
///
/// An event with neither form (content without a compact form, or bytes larger than the ring may grow) is kept as
/// it is, in a queue of objects beside the ring, in the same order.
///
/// The byte ring starts small and doubles when the buffered events do not fit, up to `maxBytes`; at that size the
/// oldest events make room. An event's bytes never wrap around the end of the ring: one that would, starts at the
/// beginning of the next lap.
struct EventRing {
    /// One buffered event.
    struct Slot {
        var position: SubscriptionHub.Position
        /// ``Form``.
        var form: UInt32
        var stateMachine: UInt64
        var kind: UInt64
        /// The first byte, counted from the ring's creation over all its laps (`start % bytes.count` in the ring).
        var start: UInt64
        var length: Int

        static let empty = Slot(
            position: SubscriptionHub.Position(index: 0, ordinal: 0), form: 0, stateMachine: 0, kind: 0, start: 0,
            length: 0)
    }

    /// How an event's content is kept: `bytes` (a pattern's length as 4 bytes, the pattern, then the payload),
    /// `object` (the event itself, in `objects`), or from `compact` on the compact form of the content type
    /// `types[form - compact]`.
    enum Form {
        static let bytes: UInt32 = 0
        static let object: UInt32 = 1
        static let compact: UInt32 = 2
    }

    /// The most events kept.
    let capacity: Int
    /// The largest the byte ring grows.
    let maxBytes: Int

    private var slots: [Slot] = []
    private var head = 0
    private(set) var count = 0
    private var bytes: [UInt8] = []
    /// Where the next event's bytes go, counted as `Slot.start` is.
    private var tail: UInt64 = 0
    /// The events kept as objects, oldest first from `objectsHead`.
    private var objects: [RaftRaisedEvent?] = []
    private var objectsHead = 0
    /// The position of the newest evicted event of each kind of each state machine.
    private var evicted: [Kind: SubscriptionHub.Position] = [:]
    /// The content types seen with a compact form, in their order of appearance.
    private var types: [any RaftEventContent.Type] = []

    /// A kind of event of a state machine.
    struct Kind: Hashable {
        var stateMachine: UInt64
        var kind: UInt64
    }

    /// The position of the newest evicted event of `kind` of `stateMachine`, if any was.
    func newestEvicted(stateMachine: UInt64, kind: UInt64) -> SubscriptionHub.Position? {
        evicted[Kind(stateMachine: stateMachine, kind: kind)]
    }

    /// The byte ring's first size.
    static let initialBytes = 64 << 10
    /// The most content types kept in compact form; content of further types is kept as objects.
    static let maxTypes = 1_024

    init(capacity: Int, maxBytes: Int) {
        self.capacity = max(1, capacity)
        self.maxBytes = max(0, maxBytes)
    }

    /// The number of bytes the byte ring holds now.
    var byteCapacity: Int { bytes.count }

    /// The number of events kept as objects.
    var objectCount: Int { objects.count - objectsHead }

    /// The `offset`-th oldest event's slot.
    private func slot(_ offset: Int) -> Slot { slots[(head + offset) % slots.count] }

    /// Adds `event` as the newest, evicting the oldest events as needed.
    mutating func append(_ event: RaftRaisedEvent, stateMachine: UInt64, at position: SubscriptionHub.Position) {
        while count >= capacity { removeOldest() }
        var slot = Slot(
            position: position, form: Form.object, stateMachine: stateMachine, kind: event.kind,
            start: tail, length: 0)
        switch event.storage {
        case .bytes(let pattern, let payload):
            let length = 4 + pattern.count + payload.count
            if pattern.count <= UInt32.max, let start = reserve(length) {
                slot.form = Form.bytes
                slot.start = start
                slot.length = length
                write(at: start, length: length) { target in
                    target.storeBytes(of: UInt32(pattern.count).littleEndian, as: UInt32.self)
                    pattern.withUnsafeBytes {
                        UnsafeMutableRawBufferPointer(rebasing: target[4...]).copyMemory(from: $0)
                    }
                    payload.withUnsafeBytes {
                        UnsafeMutableRawBufferPointer(rebasing: target[(4 + pattern.count)...]).copyMemory(from: $0)
                    }
                }
            }
        case .deferred(let content):
            if let length = content.compactSize, length >= 0, let type = typeNumber(of: content),
                let start = reserve(length)
            {
                slot.form = Form.compact + type
                slot.start = start
                slot.length = length
                write(at: start, length: length) { content.writeCompact(to: $0) }
            }
        }
        if slot.form == Form.object {
            slot.start = tail
            objects.append(event)
        }
        push(slot)
    }

    /// Calls `body` with every event, oldest first, rebuilt from its bytes (or the kept object), until it returns
    /// `false`. The event is `nil` if a content type could not read its own compact form back.
    func forEach(_ body: (Slot, RaftRaisedEvent?) -> Bool) {
        // Object slots are in order, so the n-th object slot is the n-th object.
        var object = objectsHead
        for offset in 0..<count {
            let slot = self.slot(offset)
            let event: RaftRaisedEvent?
            if slot.form == Form.object {
                event = objects[object]
                object += 1
            } else {
                event = self.event(in: slot)
            }
            guard body(slot, event) else { return }
        }
    }

    /// The event of a slot whose content is in the byte ring.
    private func event(in slot: Slot) -> RaftRaisedEvent? {
        if slot.form == Form.bytes {
            return read(slot) { raw in
                let patternCount = Int(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
                let pattern = Array(UnsafeRawBufferPointer(rebasing: raw[4..<(4 + patternCount)]))
                let payload = Array(UnsafeRawBufferPointer(rebasing: raw[(4 + patternCount)...]))
                return RaftRaisedEvent(kind: slot.kind, pattern: pattern, payload: payload)
            }
        }
        let type = types[Int(slot.form - Form.compact)]
        return read(slot) { raw in type.readCompact(from: raw).map { RaftRaisedEvent(kind: slot.kind, content: $0) } }
    }

    /// Forgets every event (and the memory they took).
    mutating func removeAll() {
        slots = []
        head = 0
        count = 0
        bytes = []
        tail = 0
        objects = []
        objectsHead = 0
        evicted = [:]
    }

    // MARK: Slots

    private mutating func push(_ slot: Slot) {
        if count == slots.count {
            // Grow the slot ring (doubling, up to the capacity), oldest first from 0.
            let size = min(capacity, max(16, slots.count * 2))
            var grown: [Slot] = []
            grown.reserveCapacity(size)
            for offset in 0..<count { grown.append(self.slot(offset)) }
            grown.append(contentsOf: repeatElement(Slot.empty, count: size - count))
            slots = grown
            head = 0
        }
        slots[(head + count) % slots.count] = slot
        count += 1
        tail = slot.start + UInt64(slot.length)
    }

    /// Evicts the oldest event.
    private mutating func removeOldest() {
        let oldest = slots[head]
        // The ring is in position order, so this is the newest evicted event of its kind.
        evicted[Kind(stateMachine: oldest.stateMachine, kind: oldest.kind)] = oldest.position
        head = head + 1 == slots.count ? 0 : head + 1
        count -= 1
        if oldest.form == Form.object {
            objects[objectsHead] = nil
            objectsHead += 1
            if objectsHead >= 1_024, objectsHead * 2 >= objects.count {
                objects.removeFirst(objectsHead)
                objectsHead = 0
            }
        }
    }

    // MARK: Bytes

    /// Where `length` bytes can go, after growing the byte ring or evicting the oldest events as needed; `nil` when
    /// they cannot fit even in an empty ring of the largest size.
    private mutating func reserve(_ length: Int) -> UInt64? {
        guard length <= maxBytes else { return nil }
        if length == 0 { return tail }
        while true {
            if let start = place(length) { return start }
            if bytes.count < maxBytes {
                grow(toFit: length)
                continue
            }
            guard count > 0 else { return nil }
            removeOldest()
        }
    }

    /// The start of `length` bytes at the write end (skipping to the next lap if they would wrap), if they fit.
    private func place(_ length: Int) -> UInt64? {
        let size = UInt64(bytes.count)
        guard length <= bytes.count else { return nil }
        var start = tail
        let offset = start % size
        // Skip to the next lap when the bytes would wrap, or when the ring is empty (so anything up to its size fits).
        if offset != 0, offset + UInt64(length) > size || count == 0 { start += size - offset }
        let oldest = count > 0 ? slots[head].start : start
        return start + UInt64(length) - oldest <= size ? start : nil
    }

    /// Doubles the byte ring (at least to fit the buffered events and `length` more, at most to `maxBytes`) and
    /// moves the events' bytes to its front, oldest first.
    private mutating func grow(toFit length: Int) {
        var used = length
        for offset in 0..<count { used += slot(offset).length }
        var size = max(Self.initialBytes, bytes.count * 2)
        while size < used { size *= 2 }
        size = min(size, maxBytes)
        var moved = [UInt8](repeating: 0, count: size)
        var next: UInt64 = 0
        moved.withUnsafeMutableBytes { target in
            bytes.withUnsafeBytes { source in
                for offset in 0..<count {
                    let position = (head + offset) % slots.count
                    let slot = slots[position]
                    if slot.length > 0 {
                        let from = Int(slot.start % UInt64(source.count))
                        UnsafeMutableRawBufferPointer(rebasing: target[Int(next)...]).copyMemory(
                            from: UnsafeRawBufferPointer(rebasing: source[from..<(from + slot.length)]))
                    }
                    slots[position].start = next
                    next += UInt64(slot.length)
                }
            }
        }
        bytes = moved
        tail = next
    }

    private mutating func write(at start: UInt64, length: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        guard length > 0 else { return }
        let offset = Int(start % UInt64(bytes.count))
        bytes.withUnsafeMutableBytes { raw in
            body(UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + length)]))
        }
    }

    private func read<Result>(_ slot: Slot, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        guard slot.length > 0 else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let offset = Int(slot.start % UInt64(bytes.count))
        return bytes.withUnsafeBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + slot.length)]))
        }
    }

    /// The number of `content`'s type among those with a compact form (registering it), or `nil` past ``maxTypes``.
    private mutating func typeNumber(of content: any RaftEventContent) -> UInt32? {
        let type = Swift.type(of: content)
        let id = ObjectIdentifier(type)
        for (number, known) in types.enumerated() where ObjectIdentifier(known) == id { return UInt32(number) }
        guard types.count < Self.maxTypes else { return nil }
        types.append(type)
        return UInt32(types.count - 1)
    }
}
