import BifrostRaftCore
import BifrostWire
import NIOCore

/// The wire encoding of Raft messages between nodes, on top of ``BifrostWire``. The layout is specified in
/// `docs/protocol.md` ("Raft messages"); decoding is strict and never traps on hostile input.
///
/// The core's message types stay free of any codec (``BifrostRaftCore`` imports nothing); this enum is the one
/// place that knows their bytes.
public enum RaftMessageCodec {
    enum Tag: UInt8 {
        case append = 1
        case appendResponse = 2
        case heartbeat = 3
        case heartbeatResponse = 4
        case vote = 5
        case voteResponse = 6
        case snapshot = 7
        case snapshotResponse = 8
        case timeoutNow = 9
        case readIndex = 10
        case readIndexResponse = 11
    }

    /// Encodes `message` into a new buffer.
    public static func encode(_ message: RaftMessage) -> ByteBuffer {
        var writer = WireWriter(capacity: 64)
        encode(message, into: &writer)
        return writer.buffer
    }

    /// Appends `message` to `writer`.
    public static func encode(_ message: RaftMessage, into writer: inout WireWriter) {
        writer.writeVarint(message.from)
        writer.writeVarint(message.to)
        writer.writeVarint(message.term)
        switch message.body {
        case .append(let request):
            writer.writeByte(Tag.append.rawValue)
            writer.writeVarint(request.prevIndex)
            writer.writeVarint(request.prevTerm)
            writer.writeVarint(request.commit)
            writer.writeVarint(UInt64(request.entries.count))
            for entry in request.entries { encode(entry, into: &writer) }
        case .appendResponse(let response):
            writer.writeByte(Tag.appendResponse.rawValue)
            writer.write(response.rejected)
            writer.writeVarint(response.index)
            writer.writeVarint(response.hintIndex)
            writer.writeVarint(response.hintTerm)
        case .heartbeat(let commit, let readSequence):
            writer.writeByte(Tag.heartbeat.rawValue)
            writer.writeVarint(commit)
            writer.writeVarint(readSequence)
        case .heartbeatResponse(let readSequence):
            writer.writeByte(Tag.heartbeatResponse.rawValue)
            writer.writeVarint(readSequence)
        case .vote(let request):
            writer.writeByte(Tag.vote.rawValue)
            writer.writeVarint(request.lastIndex)
            writer.writeVarint(request.lastTerm)
            writer.write(request.preVote)
            writer.write(request.transfer)
        case .voteResponse(let granted, let preVote):
            writer.writeByte(Tag.voteResponse.rawValue)
            writer.write(granted)
            writer.write(preVote)
        case .snapshot(let chunk):
            writer.writeByte(Tag.snapshot.rawValue)
            encode(chunk.metadata, into: &writer)
            writer.writeVarint(UInt64(clamping: chunk.offset))
            writer.write(chunk.data)
            writer.write(chunk.done)
        case .snapshotResponse(let snapshotIndex, let nextOffset, let rejected):
            writer.writeByte(Tag.snapshotResponse.rawValue)
            writer.writeVarint(snapshotIndex)
            writer.writeVarint(UInt64(clamping: nextOffset))
            writer.write(rejected)
        case .timeoutNow:
            writer.writeByte(Tag.timeoutNow.rawValue)
        case .readIndex(let context):
            writer.writeByte(Tag.readIndex.rawValue)
            writer.write(context)
        case .readIndexResponse(let context, let index):
            writer.writeByte(Tag.readIndexResponse.rawValue)
            writer.write(context)
            writer.writeVarint(index)
        }
    }

    /// Decodes one message that must span every readable byte of `buffer`.
    public static func decode(_ buffer: ByteBuffer, limits: WireLimits = .default) throws(WireError) -> RaftMessage {
        var reader = WireReader(buffer: buffer, limits: limits)
        let message = try decode(from: &reader)
        try reader.expectEnd(of: RaftMessage.self)
        return message
    }

    /// Reads one message from `reader`.
    public static func decode(from reader: inout WireReader) throws(WireError) -> RaftMessage {
        let from = try reader.readVarint()
        let to = try reader.readVarint()
        let term = try reader.readVarint()
        let tagByte = try reader.readByte()
        guard let tag = Tag(rawValue: tagByte) else {
            throw WireError(code: .invalidValue, message: "unknown Raft message tag \(tagByte)")
        }
        let body: RaftMessage.Body
        switch tag {
        case .append:
            let prevIndex = try reader.readVarint()
            let prevTerm = try reader.readVarint()
            let commit = try reader.readVarint()
            let count = try reader.readCount(of: "append entries")
            var entries: [Entry] = []
            entries.reserveCapacity(min(count, reader.remaining))
            for _ in 0..<count { entries.append(try decodeEntry(from: &reader)) }
            body = .append(AppendRequest(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit))
        case .appendResponse:
            let rejected = try reader.read(Bool.self)
            let index = try reader.readVarint()
            let hintIndex = try reader.readVarint()
            let hintTerm = try reader.readVarint()
            body = .appendResponse(
                AppendResponse(rejected: rejected, index: index, hintIndex: hintIndex, hintTerm: hintTerm)
            )
        case .heartbeat:
            let commit = try reader.readVarint()
            body = .heartbeat(commit: commit, readSequence: try reader.readVarint())
        case .heartbeatResponse:
            body = .heartbeatResponse(readSequence: try reader.readVarint())
        case .vote:
            let lastIndex = try reader.readVarint()
            let lastTerm = try reader.readVarint()
            let preVote = try reader.read(Bool.self)
            let transfer = try reader.read(Bool.self)
            body = .vote(VoteRequest(lastIndex: lastIndex, lastTerm: lastTerm, preVote: preVote, transfer: transfer))
        case .voteResponse:
            let granted = try reader.read(Bool.self)
            body = .voteResponse(granted: granted, preVote: try reader.read(Bool.self))
        case .snapshot:
            let metadata = try decodeMetadata(from: &reader)
            let offset = try readOffset(from: &reader)
            let data = try reader.read([UInt8].self)
            let done = try reader.read(Bool.self)
            body = .snapshot(SnapshotChunk(metadata: metadata, offset: offset, data: data, done: done))
        case .snapshotResponse:
            let snapshotIndex = try reader.readVarint()
            let nextOffset = try readOffset(from: &reader)
            let rejected = try reader.read(Bool.self)
            body = .snapshotResponse(snapshotIndex: snapshotIndex, nextOffset: nextOffset, rejected: rejected)
        case .timeoutNow:
            body = .timeoutNow
        case .readIndex:
            body = .readIndex(context: try reader.read([UInt8].self))
        case .readIndexResponse:
            let context = try reader.read([UInt8].self)
            body = .readIndexResponse(context: context, index: try reader.readVarint())
        }
        return RaftMessage(from: from, to: to, term: term, body: body)
    }

    // MARK: Parts

    /// Appends an entry: index, term, kind, payload.
    public static func encode(_ entry: Entry, into writer: inout WireWriter) {
        writer.writeVarint(entry.index)
        writer.writeVarint(entry.term)
        writer.writeByte(entry.kind.rawValue)
        writer.write(entry.payload)
    }

    /// Reads an entry.
    public static func decodeEntry(from reader: inout WireReader) throws(WireError) -> Entry {
        let index = try reader.readVarint()
        let term = try reader.readVarint()
        let kindByte = try reader.readByte()
        guard let kind = EntryKind(rawValue: kindByte) else {
            throw WireError(code: .invalidValue, message: "unknown entry kind \(kindByte)")
        }
        return Entry(index: index, term: term, kind: kind, payload: try reader.read([UInt8].self))
    }

    /// Appends snapshot metadata: index, term, voters, learners (each a sorted set of node ids).
    public static func encode(_ metadata: SnapshotMetadata, into writer: inout WireWriter) {
        writer.writeVarint(metadata.index)
        writer.writeVarint(metadata.term)
        writer.write(metadata.configuration.voters)
        writer.write(metadata.configuration.learners)
    }

    /// Reads snapshot metadata.
    public static func decodeMetadata(from reader: inout WireReader) throws(WireError) -> SnapshotMetadata {
        let index = try reader.readVarint()
        let term = try reader.readVarint()
        let voters = try reader.read(Set<UInt64>.self)
        let learners = try reader.read(Set<UInt64>.self)
        return SnapshotMetadata(
            index: index,
            term: term,
            configuration: Configuration(voters: voters, learners: learners)
        )
    }

    private static func readOffset(from reader: inout WireReader) throws(WireError) -> Int {
        let raw = try reader.readVarint()
        guard let offset = Int(exactly: raw) else {
            throw WireError(code: .overflow, message: "snapshot offset \(raw) does not fit Int")
        }
        return offset
    }
}
