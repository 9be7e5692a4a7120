import SystemPackage

/// Why a framed (or raw) connection ended, or why a parser could not be made. Every case
/// names the field or the state and the value that was wrong; the connection is closed
/// and every buffer it held returns.
public enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The parser's configuration cannot work (thrown by `FrameParser.init`).
    case invalidConfiguration(String)
    /// The first four bytes of a header were not "NMEM" (0x4D454D4E).
    case badMagic(UInt32)
    /// The header's version is not 1.
    case badVersion(UInt8)
    /// `header_length` below 32.
    case headerLengthTooSmall(UInt16)
    /// `header_length` above 4096.
    case headerLengthTooLarge(UInt16)
    /// `payload_length` above the receiver's configured maximum.
    case payloadTooLarge(UInt32, maximum: Int)
    /// The payload's CRC-32C differs from the header's `payload_crc32c`.
    case checksumMismatch(sequence: UInt64, expected: UInt32, computed: UInt32)
    /// The peer closed the connection in the middle of a header (`received` of
    /// `expected` header bytes, extension included once the length is known).
    case closedInHeader(received: Int, expected: Int)
    /// The peer closed the connection in the middle of a payload.
    case closedInPayload(received: Int, expected: Int)
    /// The peer reset the connection (`.connectionReset`), or receiving failed.
    case connectionFailed(Errno)
    /// The connection was ended locally (shutdown, Ctrl-C) with a frame half received.
    case aborted
    /// A frame stayed incomplete longer than the receiver allows (`received` of `expected`
    /// payload bytes after `seconds`): the peer is too slow or stalled.
    case partialFrameTimedOut(received: Int, expected: Int, seconds: Int)

    public var description: String {
        switch self {
        case let .invalidConfiguration(why):
            return "invalid framing configuration: \(why)"
        case let .badMagic(value):
            return "wrong magic \(hex(value)) in frame header (expected \(hex(FrameHeader.magic)), \"NMEM\"); is the sender framing its data? (use raw mode for unframed senders)"
        case let .badVersion(value):
            return "unsupported frame version \(value) (this receiver speaks version \(FrameHeader.currentVersion))"
        case let .headerLengthTooSmall(value):
            return "header_length \(value) is below the minimum \(FrameHeader.size)"
        case let .headerLengthTooLarge(value):
            return "header_length \(value) is above the maximum \(FrameHeader.maxHeaderLength)"
        case let .payloadTooLarge(value, maximum):
            return "payload_length \(value) is above the configured maximum \(maximum) (raise --max-payload to accept it)"
        case let .checksumMismatch(sequence, expected, computed):
            return "payload_crc32c mismatch in frame \(sequence): header says \(hex(expected)), payload has \(hex(computed))"
        case let .closedInHeader(received, expected):
            return "connection closed \(received) bytes into a \(expected)-byte header"
        case let .closedInPayload(received, expected):
            return "connection closed \(received) bytes into a \(expected)-byte payload"
        case let .connectionFailed(errno):
            return "connection failed: \(errno) (errno \(errno.rawValue))"
        case .aborted:
            return "connection ended locally in the middle of a frame"
        case let .partialFrameTimedOut(received, expected, seconds):
            return "a frame stayed incomplete for \(seconds) s (\(received) of \(expected) payload bytes): the peer is too slow; the connection was ended so it holds no receive memory"
        }
    }
}
