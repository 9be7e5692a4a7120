import NetmemFraming
import NetmemURing

/// What the plugin's comms put on the wire: Netmem frames (DESIGN.md, "The frame format")
/// with a 16-byte extension, 48 bytes before any payload. The frame's `stream_id` says
/// which kind it is; `sequence` is the message's place in posting order.
///
/// | kind | direction | sequence | extension bytes 0–7 | extension bytes 8–15 | payload |
/// |---|---|---|---|---|---|
/// | hello | connector → listener, once per socket | comm nonce | listener token | socket index, count | none |
/// | credit | receiver → sender, on socket 0 | message | bytes the receive can take | 0 | none |
/// | data | sender → receiver | message | message size | offset of this piece | the piece |
/// | refused | sender → receiver | message | send size | receive size | none |
///
/// A sender sends message *n* only after the receiver's credit for *n*: a receive is
/// always posted before its data arrives, and the sender learns its size. A send larger
/// than its receive goes as `refused`, so both sides report `ncclInvalidUsage`.
enum NCCLWireFrame: Equatable, Sendable {
    case hello(nonce: UInt64, token: UInt64, index: Int, count: Int)
    case credit(sequence: UInt64, capacity: UInt64)
    case data(sequence: UInt64, total: UInt64, offset: UInt64, length: Int, crc: UInt32?)
    case refused(sequence: UInt64, sendSize: UInt64, receiveSize: UInt64)

    static let size = FrameHeader.size + 16
    /// The largest piece one data frame carries.
    static let maxPiece = 1 << 30

    enum Kind: UInt32 {
        case hello = 0x4E43_0001
        case credit = 0x4E43_0002
        case data = 0x4E43_0003
        case refused = 0x4E43_0004
    }

    /// Writes the 48 bytes at `p`.
    func encode(into p: UnsafeMutableRawPointer) {
        let kind: Kind
        let sequence: UInt64
        let a: UInt64
        let b: UInt64
        var length: UInt32 = 0
        var crc: UInt32? = nil
        switch self {
        case let .hello(nonce, token, index, count):
            (kind, sequence, a, b) = (.hello, nonce, token, UInt64(index) | UInt64(count) << 8)
        case let .credit(s, capacity):
            (kind, sequence, a, b) = (.credit, s, capacity, 0)
        case let .data(s, total, offset, l, c):
            (kind, sequence, a, b) = (.data, s, total, offset)
            length = UInt32(l)
            crc = c
        case let .refused(s, sendSize, receiveSize):
            (kind, sequence, a, b) = (.refused, s, sendSize, receiveSize)
        }
        let header = FrameHeader(streamID: kind.rawValue, sequence: sequence, payloadLength: length, crc: crc,
                                 extensionLength: 16)
        let buffer = UnsafeMutableRawBufferPointer(start: p, count: Self.size)
        header.encode(into: buffer)
        buffer.storeBytes(of: a.littleEndian, toByteOffset: FrameHeader.size, as: UInt64.self)
        buffer.storeBytes(of: b.littleEndian, toByteOffset: FrameHeader.size + 8, as: UInt64.self)
    }

    /// Reads and checks 48 bytes; the error names the field that was wrong.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(NCCLError) -> NCCLWireFrame {
        precondition(bytes.count >= size, "a wire frame needs \(size) bytes")
        let header = FrameHeader(decoding: bytes)
        do throws(FrameError) {
            try header.validate(maxPayload: maxPiece)
        } catch {
            throw NCCLError(.remote, "peer sent a bad frame header: \(error)")
        }
        guard Int(header.headerLength) == size else {
            throw NCCLError(.remote, "peer sent a frame header of \(header.headerLength) bytes; Netmem comms use \(size)")
        }
        let a = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: FrameHeader.size, as: UInt64.self))
        let b = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: FrameHeader.size + 8, as: UInt64.self))
        guard let kind = Kind(rawValue: header.streamID) else {
            throw NCCLError(.remote, "peer sent a frame of unknown kind 0x\(String(header.streamID, radix: 16))")
        }
        if kind != .data && header.payloadLength != 0 {
            throw NCCLError(.remote, "peer sent a \(kind) frame with \(header.payloadLength) payload bytes")
        }
        switch kind {
        case .hello:
            return .hello(nonce: header.sequence, token: a, index: Int(b & 0xFF), count: Int((b >> 8) & 0xFF))
        case .credit:
            return .credit(sequence: header.sequence, capacity: a)
        case .data:
            return .data(sequence: header.sequence, total: a, offset: b, length: Int(header.payloadLength),
                         crc: header.hasPayloadCRC ? header.payloadCRC32C : nil)
        case .refused:
            return .refused(sequence: header.sequence, sendSize: a, receiveSize: b)
        }
    }
}
