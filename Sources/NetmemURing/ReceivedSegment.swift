import Netmem
import SystemPackage

/// Names one connection of a `StreamReceiver` (unique for the receiver's life).
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "connection \(rawValue)" }
}

/// A piece of a TCP stream as it landed: which connection, where in pool memory (chunk +
/// offset + length), and the bytes when the CPU may read them. The application gives it
/// back with `StreamReceiver.release(_:)` (any thread, exactly once); until then the
/// chunk stays out of the kernel's ring.
public struct ReceivedSegment: Sendable, CustomStringConvertible {
    public let connection: ConnectionID
    /// Where the bytes are: the chunk, the offset inside it, the length.
    public let fragment: NetmemFragment
    /// The byte offset of this segment in its connection's stream.
    public let streamOffset: UInt64
    let address: UInt
    let bid: UInt16

    /// The bytes, for reading (nil when the memory is not CPU-readable). Valid until the
    /// segment is released.
    public var bytes: UnsafeRawBufferPointer? {
        guard address != 0 else { return nil }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: Int(fragment.length))
    }

    public var length: Int { Int(fragment.length) }

    public var description: String { "\(connection) @\(streamOffset): \(fragment)" }
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
        case let .failed(e): return "receive failed: \(e)"
        }
    }
}

/// What the receiver tells its handler, on the RX thread.
public enum ReceiveEvent: Sendable {
    /// A connection was accepted (or adopted) and is being read.
    case connected(ConnectionID)
    /// Bytes arrived. Release the segment when done with it.
    case data(ReceivedSegment)
    /// The connection ended; every segment of it was delivered before this event.
    case closed(ConnectionID, ConnectionEnd)
    /// A listener failed and was dropped.
    case listenerFailed(Errno)
}
