@_exported import BifrostMacros

/// A key of the map with its value.
public struct MapEntry: Codable, Sendable, Hashable {
    /// The key.
    public var key: String
    /// The value.
    public var value: [UInt8]

    /// Creates an entry.
    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// A change of one key: the value before and after (`nil`: absent).
public struct MapChange: Codable, Sendable, Hashable {
    /// The key.
    public var key: String
    /// The value before the command.
    public var old: [UInt8]?
    /// The value after the command.
    public var new: [UInt8]?

    /// Creates a change.
    public init(key: String, old: [UInt8]?, new: [UInt8]?) {
        self.key = key
        self.old = old
        self.new = new
    }
}

/// The outcome of a compare-and-swap.
public struct MapSwap: Codable, Sendable, Hashable {
    /// Whether the key held the expected value (and now holds the new one).
    public var swapped: Bool
    /// The key's value after the command.
    public var current: [UInt8]?

    /// Creates an outcome.
    public init(swapped: Bool, current: [UInt8]?) {
        self.swapped = swapped
        self.current = current
    }
}

/// One page of a prefix listing.
public struct MapPage: Codable, Sendable, Hashable {
    /// The entries, in key order.
    public var entries: [MapEntry]
    /// The key to pass as `after` for the next page, or `nil` when this is the last page.
    public var next: String?

    /// Creates a page.
    public init(entries: [MapEntry], next: String?) {
        self.entries = entries
        self.next = next
    }
}

/// The built-in replicated map: string keys, byte-string values (UTF-8 text for the CLI and HTTP API).
///
/// Register it on every node (`stateMachines: [(ReplicatedMap.defaultID, ReplicatedMap())]`) and use it through
/// `ReplicatedMap.Client` (`MapClient`). Subscriptions: every insert (`onInserted`), inserts of one key
/// (`onKeyInserted(key)`), every removal (`onRemoved`), removals of one key (`onKeyRemoved(key)`), and changes of one
/// key with old and new values (`onChanged(key)`; insert, update and removal).
@StateMachine
public struct ReplicatedMap: Codable {
    /// The id the `bifrost-map` server registers the map under.
    public static let defaultID: UInt64 = 1

    /// Every insert of a new key.
    public static let onInserted = Subscription<NoPattern, MapEntry>("onInserted")
    /// Inserts of one key (the pattern), with the value.
    public static let onKeyInserted = Subscription<String, [UInt8]>("onKeyInserted")
    /// Every removal, with the value removed.
    public static let onRemoved = Subscription<NoPattern, MapEntry>("onRemoved")
    /// Removals of one key (the pattern), with the value removed.
    public static let onKeyRemoved = Subscription<String, [UInt8]>("onKeyRemoved")
    /// Changes of one key (the pattern): insert, update or removal, with the old and new values.
    public static let onChanged = Subscription<String, MapChange>("onChanged")

    var values: [String: [UInt8]] = [:]

    /// Creates an empty map.
    public init() {}

    // MARK: Commands

    /// Sets `key` to `value`; returns the previous value.
    @Command public mutating func set(key: String, value: [UInt8], context: RaftApplyContext) -> [UInt8]? {
        let old = values.updateValue(value, forKey: key)
        raiseChange(key: key, old: old, new: value, context: context)
        return old
    }

    /// Sets `key` to `value` only if the key is absent; returns the value the key had (`nil`: inserted).
    @Command public mutating func insertIfAbsent(key: String, value: [UInt8], context: RaftApplyContext) -> [UInt8]? {
        if let existing = values[key] { return existing }
        values[key] = value
        raiseChange(key: key, old: nil, new: value, context: context)
        return nil
    }

    /// Removes `key`; returns the value it had.
    @Command public mutating func remove(key: String, context: RaftApplyContext) -> [UInt8]? {
        guard let old = values.removeValue(forKey: key) else { return nil }
        raiseChange(key: key, old: old, new: nil, context: context)
        return old
    }

    /// Sets `key` to `new` (or removes it, for `nil`) if it holds `expected` (`nil`: absent).
    @Command public mutating func compareAndSwap(
        key: String, expected: [UInt8]?, new: [UInt8]?, context: RaftApplyContext
    ) -> MapSwap {
        let current = values[key]
        guard current == expected else { return MapSwap(swapped: false, current: current) }
        if current != new {
            values[key] = new
            raiseChange(key: key, old: current, new: new, context: context)
        }
        return MapSwap(swapped: true, current: new)
    }

    /// Sets many keys in one command (one log entry); returns how many keys were new.
    @Command public mutating func putAll(_ entries: [MapEntry], context: RaftApplyContext) -> UInt64 {
        var inserted: UInt64 = 0
        for entry in entries {
            let old = values.updateValue(entry.value, forKey: entry.key)
            if old == nil { inserted += 1 }
            raiseChange(key: entry.key, old: old, new: entry.value, context: context)
        }
        return inserted
    }

    /// Removes every key; returns how many there were. Raises a removal event per key.
    @Command public mutating func clear(context: RaftApplyContext) -> UInt64 {
        let removed = values
        values.removeAll()
        for key in removed.keys.sorted() {
            raiseChange(key: key, old: removed[key], new: nil, context: context)
        }
        return UInt64(removed.count)
    }

    // MARK: Queries

    /// The value of `key`.
    @Query public func get(key: String) -> [UInt8]? { values[key] }

    /// Whether `key` is present.
    @Query public func contains(key: String) -> Bool { values[key] != nil }

    /// The number of keys.
    @Query public func count() -> UInt64 { UInt64(values.count) }

    /// The keys starting with `prefix`, in order, after the key `after` (exclusive), at most `limit` (capped at
    /// 10,000) of them.
    @Query public func list(prefix: String, after: String?, limit: Int) -> MapPage {
        let limit = min(max(limit, 1), 10_000)
        var keys = values.keys.filter { key in key.hasPrefix(prefix) && (after.map { key > $0 } ?? true) }
        keys.sort()
        let page = keys.prefix(limit)
        let entries = page.map { MapEntry(key: $0, value: values[$0] ?? []) }
        return MapPage(entries: entries, next: keys.count > limit ? page.last : nil)
    }

    // MARK: Events

    private func raiseChange(key: String, old: [UInt8]?, new: [UInt8]?, context: RaftApplyContext) {
        if let new, old == nil {
            context.notify(Self.onInserted, payload: MapEntry(key: key, value: new))
            context.notify(Self.onKeyInserted, pattern: key, payload: new)
        }
        if let old, new == nil {
            context.notify(Self.onRemoved, payload: MapEntry(key: key, value: old))
            context.notify(Self.onKeyRemoved, pattern: key, payload: old)
        }
        context.notify(Self.onChanged, pattern: key, payload: MapChange(key: key, old: old, new: new))
    }
}

/// The typed client of ``ReplicatedMap``.
public typealias MapClient = ReplicatedMap.Client
