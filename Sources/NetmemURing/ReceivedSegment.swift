import Netmem
import SystemPackage

/// Names one connection of a `StreamReceiver` (unique for the receiver's life).
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    /// The number the receiver gave the connection.
    public let rawValue: UInt64
    /// An identifier from its number; a receiver numbers its connections itself.
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "connection \(rawValue)" }
}

/// A piece of a TCP stream as it landed: which connection, where in its stream, and the
/// bytes where the kernel put them, holding a reference on their pool chunk. It cannot
/// be copied: the chunk reference drops exactly once, when the segment goes away or is
/// released, from any thread; until then the chunk is never recycled.
public struct ReceivedSegment: ~Copyable, Sendable {
    /// The connection the bytes came from.
    public let connection: ConnectionID
    /// The byte offset of this segment in its connection's stream.
    public let streamOffset: UInt64
    /// The bytes, owned: their chunk, where in it, and their CPU address.
    public let piece: PoolFragment

    init(connection: ConnectionID, streamOffset: UInt64, piece: consuming PoolFragment) {
        self.connection = connection
        self.streamOffset = streamOffset
        self.piece = piece
    }

    /// Bytes in the segment.
    public var length: Int { piece.count }
    /// Where the bytes are: the chunk, the offset inside it, the length.
    public var fragment: NetmemFragment { piece.fragment }

    /// The bytes, for reading inside `body` (a receiver's pools are always readable).
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        guard let base = piece.baseAddress else {
            preconditionFailure("\(piece.fragment) of \(connection) is not readable")
        }
        return try body(UnsafeRawBufferPointer(start: base, count: piece.count))
    }

    /// Gives the chunk reference back now (the same as letting the segment go away).
    public consuming func release() {}

    /// Ends the segment and hands its owned piece to the caller (a parser, a token table).
    public consuming func takePiece() -> PoolFragment { piece }
}

/// Why a connection ended.
public enum ConnectionEnd: Sendable, Equatable, CustomStringConvertible {
    /// The peer closed its side (EOF) after sending everything.
    case endOfStream
    /// The peer reset the connection (ECONNRESET).
    case reset
    /// The application closed it (`StreamReceiver.close(_:)`), or the receiver stopped.
    case closedLocally
    /// The receive failed with this error.
    case failed(Errno)

    public var description: String {
        switch self {
        case .endOfStream: return "end of stream"
        case .reset: return "connection reset by peer"
        case .closedLocally: return "closed locally"
        case let .failed(e): return "receive failed: \(e) (errno \(e.rawValue))"
        }
    }
}

/// What the receiver tells its handler, on the RX thread. A `.data` event owns its
/// segment: consume it (`switch consume event`) and keep, pass on or drop the segment.
public enum ReceiveEvent: ~Copyable, Sendable {
    /// A connection was accepted (or adopted) and is being read.
    case connected(ConnectionID)
    /// Bytes arrived.
    case data(ReceivedSegment)
    /// This many bytes of a `placeNext` landed in its buffer, in stream order after the
    /// segments before.
    case placed(ConnectionID, Int)
    /// The connection ended; every segment of it was delivered before this event.
    case closed(ConnectionID, ConnectionEnd)
    /// A listener failed for good (the error is not one accept can recover from): no
    /// more connections come from it.
    case listenerFailed(FileDescriptor, Errno)
    /// About every `Configuration.tickInterval`, for timeouts on the RX thread.
    case tick
}
