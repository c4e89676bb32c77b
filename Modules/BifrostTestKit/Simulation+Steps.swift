import BifrostRaftCore

extension Simulation {
    // MARK: - Client actions

    mutating func proposeBatch() throws(SimulationFailure) {
        if rng.chance(1, in: 10) {
            // Proposals on a follower must fail with a typed error, never trap.
            let id = nodeIDs[Int(rng.next(below: UInt64(nodeIDs.count)))]
            if let core = nodes[id]?.core, core.role != .leader {
                var accepted = false
                do {
                    try nodes[id]!.core!.propose([[1, 2, 3]])
                    accepted = true
                } catch {
                    guard error.code == .notLeader else { throw failure("unexpected propose error \(error)") }
                }
                if accepted { throw failure("a non-leader accepted a proposal") }
            }
        }
        guard let leaderID = currentLeader() else { return }
        var payloads: [[UInt8]] = []
        for _ in 0..<(1 + rng.next(below: 4)) {
            let proposal = nextProposalID
            nextProposalID += 1
            var payload = Simulation.encode(proposal)
            for _ in 0..<rng.next(below: 40) { payload.append(UInt8(truncatingIfNeeded: rng.next())) }
            payloads.append(payload)
            unacknowledged[proposal] = payload
        }
        try propose(payloads, at: leaderID)
    }

    mutating func propose(_ payloads: [[UInt8]], at leaderID: NodeID) throws(SimulationFailure) {
        let range: ClosedRange<UInt64>
        do {
            range = try nodes[leaderID]!.core!.propose(payloads)
        } catch {
            switch error.code {
            case .notLeader, .transferInProgress, .proposalDropped: return
            default: throw failure("unexpected propose error \(error)")
            }
        }
        record(.propose(leaderID, range, nodes[leaderID]!.core!.term))
        try processReady(leaderID)
    }

    mutating func issueRead() throws(SimulationFailure) {
        let id = nodeIDs[Int(rng.next(below: UInt64(nodeIDs.count)))]
        guard nodes[id]?.core != nil else { return }
        let readID = nextReadID
        nextReadID += 1
        // Linearizability: the read must observe every write acknowledged before it was issued.
        nodes[id]!.pendingReads[readID] = acknowledgedMaxIndex
        do {
            try nodes[id]!.core!.readIndex(context: Simulation.encode(readID))
        } catch {
            nodes[id]!.pendingReads[readID] = nil
            guard error.code == .notLeader else { throw failure("unexpected read error \(error)") }
        }
        try processReady(id)
    }

    mutating func changeMembership() throws(SimulationFailure) {
        guard let leaderID = currentLeader(), let core = nodes[leaderID]?.core else { return }
        let config = core.configuration
        let change: MembershipChange
        if let learner = config.learners.sorted().first {
            change = .promote(learner)
        } else if config.voters.count <= configuration.nodeCount, let spare = spareIDs.first {
            change = .addLearner(spare)
        } else if config.voters.count > 3 {
            let voters = config.voters.sorted()
            change = .remove(voters[Int(rng.next(below: UInt64(voters.count)))])
        } else {
            return
        }
        let index: UInt64
        do {
            index = try nodes[leaderID]!.core!.changeMembership(change)
        } catch {
            switch error.code {
            case .configurationChangeInProgress, .learnerNotCaughtUp, .transferInProgress, .notLeader: return
            default: throw failure("unexpected membership error \(error)")
            }
        }
        record(.membership(leaderID, change, index))
        report.membershipChanges += 1
        if case .addLearner(let newID) = change {
            spareIDs.removeFirst()
            nodes[newID] = Node(id: newID, core: nil, disk: MemoryRaftStorage(configuration: Configuration()))
            nodeIDs.append(newID)
            try start(newID)
        }
        try processReady(leaderID)
    }

    mutating func transferLeadership() throws(SimulationFailure) {
        guard let leaderID = currentLeader(), let core = nodes[leaderID]?.core else { return }
        let others = core.configuration.voters.sorted().filter { $0 != leaderID }
        guard !others.isEmpty else { return }
        let target = others[Int(rng.next(below: UInt64(others.count)))]
        record(.transfer(leaderID, target))
        report.transfers += 1
        do {
            try nodes[leaderID]!.core!.transferLeadership(to: target)
        } catch {
            throw failure("unexpected transfer error \(error)")
        }
        try processReady(leaderID)
    }

    // MARK: - Network

    mutating func send(_ message: RaftMessage) {
        if faultsActive && rng.chance(configuration.dropPercent, in: 100) {
            record(.drop(message))
            return
        }
        network.append(InFlight(deliverAt: now + delay(), message: message))
        if faultsActive && rng.chance(configuration.duplicatePercent, in: 100) {
            network.append(InFlight(deliverAt: now + delay(), message: message))
        }
    }

    mutating func delay() -> Int {
        guard faultsActive, configuration.maxDelayTicks > 0 else { return 0 }
        if rng.chance(7, in: 10) { return 0 }
        return 1 + Int(rng.next(below: configuration.maxDelayTicks))
    }

    func reachable(_ from: NodeID, _ to: NodeID) -> Bool {
        guard let side = partition else { return true }
        if partitionOneWay { return !(side.contains(from) && !side.contains(to)) }
        return side.contains(from) == side.contains(to)
    }

    mutating func deliverDue() throws(SimulationFailure) {
        var rounds = 0
        while rounds < 40 {
            rounds += 1
            var due: [RaftMessage] = []
            var rest: [InFlight] = []
            for item in network {
                if item.deliverAt <= now { due.append(item.message) } else { rest.append(item) }
            }
            if due.isEmpty { return }
            network = rest
            if faultsActive && due.count > 1 {
                for position in stride(from: due.count - 1, to: 0, by: -1) {
                    due.swapAt(position, Int(rng.next(below: UInt64(position + 1))))
                }
            }
            for message in due {
                guard nodes[message.to]?.core != nil, reachable(message.from, message.to) else {
                    record(.drop(message))
                    continue
                }
                record(.deliver(message))
                report.delivered += 1
                nodes[message.to]!.core!.step(message)
                try processReady(message.to)
            }
        }
    }

    // MARK: - The shell: persist, send, apply, advance

    mutating func processReady(_ id: NodeID) throws(SimulationFailure) {
        var rounds = 0
        while rounds < 8, nodes[id]?.core?.hasReady == true {
            rounds += 1
            let ready = nodes[id]!.core!.ready()
            // Messages that do not depend on durable state leave first, in parallel with the write (as the node
            // shell does); a crash below then tests that nothing they promised relied on the lost write.
            for message in ready.messages where !message.requiresPersistence { send(message) }
            if faultsActive && rng.chance(configuration.crashInReadyPerMille, in: 1000) {
                crash(id, point: "before persisting a ready batch (early messages sent)")
                return
            }
            // 1. Persist (the simulated fsync): snapshot, entries, hard state.
            try checkEntries(id, ready.entries)
            if let snapshot = ready.snapshot { nodes[id]!.core!.storage.applySnapshot(snapshot) }
            if !ready.entries.isEmpty { nodes[id]!.core!.storage.append(ready.entries) }
            if let hardState = ready.hardState {
                try checkPersisted(id, hardState)
                nodes[id]!.core!.storage.hardState = hardState
                nodes[id]!.persisted = hardState
            }
            if faultsActive && rng.chance(configuration.crashInReadyPerMille, in: 1000) {
                crash(id, point: "after persisting, before sending")
                return
            }
            // 2. Send.
            for message in ready.messages where message.requiresPersistence { send(message) }
            // 3. Apply.
            if let snapshot = ready.snapshot { try install(id, snapshot) }
            if !ready.committedEntries.isEmpty { try apply(id, ready.committedEntries) }
            for state in ready.readStates { try checkRead(id, state) }
            nodes[id]!.core!.advance(ready)
            try checkNode(id)
            maybeSnapshot(id)
        }
        try checkNode(id)
    }

    mutating func install(_ id: NodeID, _ snapshot: Snapshot) throws(SimulationFailure) {
        let meta = snapshot.metadata
        guard meta.index > nodes[id]!.smApplied else {
            throw failure(
                "node \(id) asked to install snapshot \(meta.index) at or below applied \(nodes[id]!.smApplied)")
        }
        guard let hash = Simulation.decodeSnapshot(snapshot.data) else {
            throw failure("node \(id) received a corrupt snapshot image")
        }
        if let expected = appliedRecord[meta.index], expected.smHash != hash || expected.term != meta.term {
            throw failure("state machine safety: snapshot \(meta.index) installed at \(id) differs from applied state")
        }
        nodes[id]!.smApplied = meta.index
        nodes[id]!.smHash = hash
        report.snapshotsInstalled += 1
        record(
            .note("install snapshot at \(id): \(meta.index)/\(meta.term) config \(meta.configuration.voters.sorted())"))
    }

    mutating func apply(_ id: NodeID, _ entries: [Entry]) throws(SimulationFailure) {
        record(.apply(id, entries[0].index, entries[entries.count - 1].index))
        for entry in entries {
            guard entry.index == nodes[id]!.smApplied + 1 else {
                throw failure("node \(id) applied \(entry.index) after \(nodes[id]!.smApplied) (gap or repeat)")
            }
            var hash = Simulation.hash(entry)
            if let at = configuration.corruptApplyAtTick, now >= at, !corrupted {
                corrupted = true
                hash ^= 1
                record(.note("TEST HOOK: corrupted the state machine of \(id) at \(entry.index)"))
            }
            let smHash = Simulation.mix(nodes[id]!.smHash, hash)
            nodes[id]!.smApplied = entry.index
            nodes[id]!.smHash = smHash
            if let existing = appliedRecord[entry.index] {
                guard existing.term == entry.term, existing.hash == hash, existing.smHash == smHash else {
                    throw failure(
                        "state machine safety: node \(id) applied a different entry at \(entry.index) "
                            + "(term \(entry.term), recorded term \(existing.term))"
                    )
                }
            } else {
                appliedRecord[entry.index] = (entry.term, hash, smHash)
            }
            if entry.kind == .normal, entry.payload.count >= 8 {
                let proposal = Simulation.decode(entry.payload)
                if unacknowledged.removeValue(forKey: proposal) != nil {
                    report.acknowledged += 1
                    acknowledgedMaxIndex = max(acknowledgedMaxIndex, entry.index)
                }
            }
        }
    }

    mutating func checkRead(_ id: NodeID, _ state: ReadState) throws(SimulationFailure) {
        let readID = Simulation.decode(state.context)
        guard let required = nodes[id]!.pendingReads.removeValue(forKey: readID) else { return }
        guard state.index >= required else {
            throw failure(
                "linearizability: read \(readID) at \(id) got index \(state.index) < acknowledged \(required)")
        }
        report.reads += 1
    }

    mutating func maybeSnapshot(_ id: NodeID) {
        guard configuration.snapshotEvery > 0, let core = nodes[id]?.core else { return }
        let applied = nodes[id]!.smApplied
        guard applied >= core.storage.snapshotMetadata.index + configuration.snapshotEvery, rng.chance(1, in: 3),
            applied <= core.appliedIndex, let meta = core.snapshotMetadata(at: applied)
        else { return }
        var data = Simulation.encode(applied) + Simulation.encode(nodes[id]!.smHash)
        data += [UInt8](repeating: 0xAB, count: 40)
        do {
            try nodes[id]!.core!.storage.createSnapshot(meta, data: data)
            record(.snapshot(id, applied))
        } catch {
            record(.note("snapshot at \(id) refused: \(error)"))
        }
    }

    // MARK: - Invariants

    /// Log matching, checked incrementally: an entry `(index, term)` must have the same content and the same
    /// predecessor term on every node that ever holds it (which implies identical prefixes by induction).
    mutating func checkEntries(_ id: NodeID, _ entries: [Entry]) throws(SimulationFailure) {
        guard !entries.isEmpty, let core = nodes[id]?.core else { return }
        for entry in entries {
            let prevTerm = entry.index > 1 ? (core.term(at: entry.index - 1) ?? .max) : 0
            let key = EntryKey(index: entry.index, term: entry.term)
            let hash = Simulation.hash(entry)
            if let existing = entryRecord[key] {
                guard existing.hash == hash else {
                    throw failure("log matching: node \(id) holds a different entry \(entry.index)/\(entry.term)")
                }
                guard existing.prevTerm == prevTerm || existing.prevTerm == .max || prevTerm == .max else {
                    throw failure(
                        "log matching: node \(id) has term \(prevTerm) before \(entry.index)/\(entry.term), "
                            + "another node has \(existing.prevTerm)"
                    )
                }
            } else {
                entryRecord[key] = (hash, prevTerm)
            }
        }
    }

    mutating func checkPersisted(_ id: NodeID, _ state: HardState) throws(SimulationFailure) {
        let previous = nodes[id]!.persisted
        guard state.term >= previous.term else {
            throw failure("node \(id) persisted term \(state.term) after \(previous.term)")
        }
        if state.term == previous.term && previous.vote != noNode && state.vote != previous.vote {
            throw failure("node \(id) voted twice in term \(state.term): \(previous.vote) then \(state.vote)")
        }
        guard state.commit >= previous.commit else {
            throw failure("node \(id) persisted commit \(state.commit) after \(previous.commit)")
        }
    }

    mutating func checkNode(_ id: NodeID) throws(SimulationFailure) {
        guard let core = nodes[id]?.core else { return }
        let node = nodes[id]!
        guard core.term >= node.lastTerm else { throw failure("node \(id) term went back") }
        guard core.commitIndex >= node.lastCommit else {
            throw failure("node \(id) commit went back from \(node.lastCommit) to \(core.commitIndex)")
        }
        guard core.appliedIndex >= node.lastApplied else { throw failure("node \(id) applied index went back") }
        guard core.commitIndex <= core.lastIndex else { throw failure("node \(id) committed beyond its log") }
        if core.commitIndex > node.lastCommit && core.role == .leader && node.wasLeaderInTerm == core.term
            && core.term(at: core.commitIndex) != core.term
        {
            // §5.4.2: a leader commits by counting only entries of its own term.
            throw failure("leader \(id) advanced its commit index to \(core.commitIndex), an entry of an earlier term")
        }
        if core.commitIndex > node.lastCommit {
            var index = node.lastCommit + 1
            while index <= core.commitIndex {
                if let term = core.term(at: index) {
                    if let recorded = committedTerm[index] {
                        guard recorded == term else {
                            throw failure(
                                "node \(id) committed \(index)/\(term) but \(index)/\(recorded) was committed")
                        }
                    } else {
                        committedTerm[index] = term
                    }
                }
                index += 1
            }
            maxCommitted = max(maxCommitted, core.commitIndex)
        }
        nodes[id]!.lastTerm = core.term
        nodes[id]!.lastCommit = core.commitIndex
        nodes[id]!.lastApplied = core.appliedIndex
        if core.role == .leader && node.wasLeaderInTerm != core.term {
            nodes[id]!.wasLeaderInTerm = core.term
            if let other = leaderOfTerm[core.term], other != id {
                throw failure("election safety: \(other) and \(id) are both leaders of term \(core.term)")
            }
            leaderOfTerm[core.term] = id
            report.elections += 1
            record(.leader(id, core.term))
            // Leader completeness: the new leader holds every committed entry.
            guard core.lastIndex >= maxCommitted else {
                throw failure(
                    "leader completeness: leader \(id) last index \(core.lastIndex) < committed \(maxCommitted)")
            }
            var index = core.storage.snapshotMetadata.index + 1
            while index <= maxCommitted {
                if let recorded = committedTerm[index], let term = core.term(at: index), term != recorded {
                    throw failure(
                        "leader completeness: leader \(id) has \(index)/\(term), committed \(index)/\(recorded)")
                }
                index += 1
            }
        }
    }

    // MARK: - Liveness

    mutating func livenessPhase() throws(SimulationFailure) {
        faultsActive = false
        partition = nil
        record(.heal)
        for id in nodeIDs where nodes[id]?.core == nil { try start(id) }
        let start = now
        var lastRetry = Int.min / 2
        var marker: UInt64? = nil
        while now - start < configuration.livenessBoundTicks {
            try step()
            guard let leaderID = currentLeader(), let core = nodes[leaderID]?.core else { continue }
            guard core.term(at: core.commitIndex) == core.term else { continue }
            if marker == nil {
                // A fresh proposal after the faults: it must commit.
                let proposal = nextProposalID
                nextProposalID += 1
                marker = proposal
                unacknowledged[proposal] = Simulation.encode(proposal)
            }
            if now - lastRetry >= 20 && !unacknowledged.isEmpty {
                // The client retries whatever was never acknowledged.
                lastRetry = now
                let payloads = unacknowledged.keys.sorted().map { unacknowledged[$0]! }
                try propose(payloads, at: leaderID)
            }
            guard unacknowledged.isEmpty, let leaderCore = nodes[leaderID]?.core,
                leaderCore.commitIndex == leaderCore.lastIndex
            else { continue }
            var caughtUp = true
            for member in leaderCore.configuration.members {
                guard let memberCore = nodes[member]?.core, memberCore.appliedIndex >= leaderCore.commitIndex else {
                    caughtUp = false
                    break
                }
            }
            if caughtUp {
                report.livenessTicks = now - start
                return
            }
        }
        let leader = currentLeader().map { "\($0)" } ?? "none"
        throw failure(
            "liveness: not converged \(configuration.livenessBoundTicks) ticks after faults stopped "
                + "(leader \(leader), \(unacknowledged.count) proposals unacknowledged)"
        )
    }

    // MARK: - Encoding helpers

    static func encode(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) }
    }

    static func decode(_ bytes: [UInt8]) -> UInt64 {
        var value: UInt64 = 0
        for offset in 0..<min(8, bytes.count) { value |= UInt64(bytes[offset]) << UInt64(8 * offset) }
        return value
    }

    static func decodeSnapshot(_ data: [UInt8]) -> UInt64? {
        if data.isEmpty { return 0 }
        guard data.count >= 16 else { return nil }
        return decode(Array(data[8..<16]))
    }

    static func hash(_ entry: Entry) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        h = (h ^ UInt64(entry.kind.rawValue)) &* 0x100_0000_01B3
        h = (h ^ entry.term) &* 0x100_0000_01B3
        for byte in entry.payload { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return h
    }

    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var z = a &+ 0x9E37_79B9_7F4A_7C15 &+ b
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
