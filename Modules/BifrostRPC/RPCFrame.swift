import BifrostWire
import NIOCore

/// One unit of the RPC protocol on a connection. See `docs/protocol.md`, "RPC framing".
///
/// Every frame is a 4-byte big-endian length followed by that many bytes: a kind byte, a varint request id,
/// and the kind's fields. Payloads are slices of the received buffer (no copy).
public enum RPCFrame: Hashable, Sendable {
    /// A call of `function` on `service`. `timeout` is the time the caller will wait, in microseconds (0: none),
    /// so that the server can drop work nobody waits for.
    case request(id: UInt64, service: UInt64, function: UInt64, timeoutMicros: UInt64, payload: ByteBuffer)
    /// The successful result of request `id`.
    case response(id: UInt64, payload: ByteBuffer)
    /// The failure of request `id`.
    case failure(id: UInt64, error: RPCError)
    /// A server-pushed message on the stream opened by request `id`.
    case push(id: UInt64, payload: ByteBuffer)
    /// The caller gave up on request `id` (deadline or cancellation).
    case cancel(id: UInt64)
    /// A keepalive probe; the peer answers with a `pong` carrying the same id.
    case ping(id: UInt64)
    /// The answer to a `ping`.
    case pong(id: UInt64)
    /// The server is draining: no new requests on this connection, in-flight ones still complete.
    case goAway

    enum Kind: UInt8 {
        case request = 1
        case response = 2
        case failure = 3
        case push = 4
        case cancel = 5
        case ping = 6
        case pong = 7
        case goAway = 8
    }

    /// The request id the frame refers to (`nil` for `goAway`).
    public var requestID: UInt64? {
        switch self {
        case .request(let id, _, _, _, _), .response(let id, _), .failure(let id, _), .push(let id, _), .cancel(let id),
            .ping(let id), .pong(let id):
            id
        case .goAway:
            nil
        }
    }

    /// The size of the length prefix.
    public static let lengthPrefixSize = 4

    /// Appends the frame, with its length prefix, to `buffer`.
    public func write(to buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        var writer = WireWriter(buffer: buffer)
        buffer = ByteBuffer()  // hand the storage to the writer, so it is not copied on write
        switch self {
        case .request(let id, let service, let function, let timeout, let payload):
            writer.writeByte(Kind.request.rawValue)
            writer.writeVarint(id)
            writer.writeVarint(service)
            writer.writeVarint(function)
            writer.writeVarint(timeout)
            writer.buffer.writeImmutableBuffer(payload)
        case .response(let id, let payload):
            writer.writeByte(Kind.response.rawValue)
            writer.writeVarint(id)
            writer.buffer.writeImmutableBuffer(payload)
        case .failure(let id, let error):
            writer.writeByte(Kind.failure.rawValue)
            writer.writeVarint(id)
            writer.writeByte(error.code.rawValue)
            writer.write(error.message)
        case .push(let id, let payload):
            writer.writeByte(Kind.push.rawValue)
            writer.writeVarint(id)
            writer.buffer.writeImmutableBuffer(payload)
        case .cancel(let id):
            writer.writeByte(Kind.cancel.rawValue)
            writer.writeVarint(id)
        case .ping(let id):
            writer.writeByte(Kind.ping.rawValue)
            writer.writeVarint(id)
        case .pong(let id):
            writer.writeByte(Kind.pong.rawValue)
            writer.writeVarint(id)
        case .goAway:
            writer.writeByte(Kind.goAway.rawValue)
            writer.writeVarint(0)
        }
        buffer = writer.buffer
        let length = buffer.writerIndex - lengthIndex - Self.lengthPrefixSize
        buffer.setInteger(UInt32(truncatingIfNeeded: length), at: lengthIndex)
    }

    /// Parses the body of one frame (the bytes after the length prefix).
    ///
    /// - Throws: ``RPCError/Code/protocolViolation`` for an unknown kind or malformed fields.
    public static func parse(body: ByteBuffer) throws(RPCError) -> RPCFrame {
        var reader = WireReader(buffer: body)
        do {
            let kindByte = try reader.readByte()
            guard let kind = Kind(rawValue: kindByte) else {
                throw RPCError(code: .protocolViolation, message: "unknown frame kind \(kindByte)")
            }
            let id = try reader.readVarint()
            switch kind {
            case .request:
                let service = try reader.readVarint()
                let function = try reader.readVarint()
                let timeout = try reader.readVarint()
                return .request(
                    id: id,
                    service: service,
                    function: function,
                    timeoutMicros: timeout,
                    payload: reader.buffer
                )
            case .response:
                return .response(id: id, payload: reader.buffer)
            case .failure:
                let code = RPCError.Code(wireValue: try reader.readByte())
                let message = try reader.read(String.self)
                try reader.expectEnd(of: RPCFrame.self)
                return .failure(id: id, error: RPCError(code: code, message: message))
            case .push:
                return .push(id: id, payload: reader.buffer)
            case .cancel:
                try reader.expectEnd(of: RPCFrame.self)
                return .cancel(id: id)
            case .ping:
                try reader.expectEnd(of: RPCFrame.self)
                return .ping(id: id)
            case .pong:
                try reader.expectEnd(of: RPCFrame.self)
                return .pong(id: id)
            case .goAway:
                try reader.expectEnd(of: RPCFrame.self)
                return .goAway
            }
        } catch let error as WireError {
            throw RPCError(code: .protocolViolation, message: "malformed frame: \(error.message)")
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(code: .protocolViolation, message: "malformed frame: \(error)")
        }
    }
}

extension RPCFrame {
    /// Takes the next complete frame off the front of `buffer`; nil (with `buffer` untouched) when the frame is
    /// not complete yet. See ``RPCFrameDecoder`` for the errors.
    static func split(from buffer: inout ByteBuffer, maxFrameSize: Int) throws(RPCError) -> RPCFrame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length > 0 else {
            throw RPCError(code: .protocolViolation, message: "empty frame")
        }
        guard length <= maxFrameSize else {
            throw RPCError(
                code: .resourceExhausted,
                message: "frame of \(length) bytes exceeds the limit of \(maxFrameSize)"
            )
        }
        guard buffer.readableBytes >= RPCFrame.lengthPrefixSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: RPCFrame.lengthPrefixSize)
        guard let body = buffer.readSlice(length: Int(length)) else { return nil }
        return try RPCFrame.parse(body: body)
    }
}

/// Splits a byte stream into ``RPCFrame``s, refusing frames larger than a limit before buffering them.
///
/// A length prefix above `maxFrameSize` throws ``RPCError/Code/resourceExhausted`` as soon as its four bytes
/// arrive, so a hostile peer cannot make the decoder buffer gigabytes. A zero length, an unknown kind or a
/// malformed body throws ``RPCError/Code/protocolViolation``. Either way the shell closes that one connection.
public struct RPCFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RPCFrame

    /// The largest frame body accepted, in bytes.
    public let maxFrameSize: Int

    /// Creates a decoder. The default limit is 16 MiB.
    public init(maxFrameSize: Int = 16 << 20) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> RPCFrame? {
        try RPCFrame.split(from: &buffer, maxFrameSize: maxFrameSize)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RPCFrame? {
        try decode(buffer: &buffer)
    }
}
