import NetmemFraming
import NetmemFuzzSupport

/// What one fuzz input asks for: a byte stream, the pieces it arrives in, and how the
/// receiver treats it.
///
/// Layout: byte 0 is the mode (bits 0-1: 0 or 1 build the stream from frame
/// descriptions, 2 take the rest verbatim as a framed stream, 3 take it verbatim in raw
/// mode; bit 2: the consumer holds every frame to the end instead of letting it go at
/// once; bit 3: the connection ends with `abort()` instead of `finish()`; bits 5-7: the
/// maximum payload). Byte 1: how many piece sizes follow (0-32), each a u16 (bits 0-14:
/// the size - 1; bit 15: collapse the frame being received into staging after this
/// piece); the sizes repeat until the stream is fed. Then the stream.
///
/// A frame description (built mode) is one byte `d`, then what it announces: the payload
/// length (`d & 3`: 0 a u8, 1 a u16, 2 empty, 3 no frame but u8 bytes of garbage
/// verbatim), with `d & 4` a CRC-32C, `d & 8` a u8 of extension length, `d & 16` a
/// skipped sequence number, `d & 32` a u16 position of a payload or CRC bit to flip,
/// `d & 64` a u8 header offset and a u8 to xor there, `d & 128` a u16 where to cut the
/// frame and end the stream. Payload bytes come from the input, then a pattern.
struct FramedInput {
    enum Ending { case finish, abort }

    var raw: Bool
    var holdFrames: Bool
    var ending: Ending
    var maxPayload: Int
    /// Piece sizes (each ≥ 1) and whether to collapse after it, cycled.
    var pieces: [(size: Int, collapse: Bool)]
    var stream: [UInt8]

    static let maxPayloads = [0, 1, 100, 4096, 65_536, 1 << 20, 1 << 22, Int(UInt32.max)]
    static let maxStream = 64 << 10
    static let maxPiece = 32 << 10
    /// Payload bytes past the end of the input: byte i is i * 31 + 7.
    static let pattern: [UInt8] = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    init(_ input: inout FuzzReader) {
        let mode = input.u8()
        raw = mode & 3 == 3
        holdFrames = mode & 4 != 0
        ending = mode & 8 != 0 ? .abort : .finish
        maxPayload = Self.maxPayloads[Int(mode >> 5)]
        let count = Int(input.u8() % 33)
        pieces = (0..<count).map { _ in
            let v = input.u16()
            return (size: Int(v & 0x7FFF) % Self.maxPiece + 1, collapse: v & 0x8000 != 0)
        }
        if pieces.isEmpty { pieces = [(size: Self.maxPiece, collapse: false)] }
        if mode & 3 >= 2 {
            stream = Array(input.rest().prefix(Self.maxStream))
        } else {
            stream = Self.build(&input)
        }
    }

    /// A framed stream from frame descriptions.
    static func build(_ input: inout FuzzReader) -> [UInt8] {
        var out: [UInt8] = []
        var sequence: UInt64 = input.u64() >> 8
        let streamID = input.u32()
        while !input.isAtEnd && out.count < maxStream {
            let d = input.u8()
            let length: Int
            switch d & 3 {
            case 0: length = Int(input.u8())
            case 1: length = Int(input.u16())
            case 2: length = 0
            default:
                out += input.take(Int(input.u8()))
                continue
            }
            let extensionLength = d & 8 != 0 ? Int(input.u8()) : 0
            if d & 16 != 0 { sequence &+= 1 }
            let flip = d & 32 != 0 ? Int(input.u16()) : nil
            let mutation = d & 64 != 0 ? (offset: Int(input.u8() % 32), xor: input.u8()) : nil
            let cut = d & 128 != 0 ? Int(input.u16()) : nil
            var payload = input.take(length)
            if payload.count < length { payload += Self.pattern[payload.count..<length] }
            let crc = d & 4 != 0 ? CRC32C.checksum(payload) : nil
            var header = FrameHeader(streamID: streamID, sequence: sequence, payloadLength: UInt32(length), crc: crc,
                                     extensionLength: extensionLength)
            sequence &+= 1
            if let flip {
                if length > 0 {
                    payload[flip % length] ^= UInt8(1 << (flip % 8))
                } else {
                    header.payloadCRC32C ^= UInt32(1) << (flip % 32)
                }
            }
            var frame = header.encoded
            for i in FrameHeader.size..<frame.count { frame[i] = 0xEE }
            if let mutation { frame[mutation.offset] ^= mutation.xor }
            frame += payload
            if let cut {
                out += frame.prefix(cut % max(frame.count, 1))
                break
            }
            out += frame
        }
        return out
    }
}

/// What a receiver must make of a whole framed stream, worked out on the contiguous
/// bytes (no pieces): the frames it delivers (header, where the payload lies) and how the
/// connection ends (nil: cleanly at a frame boundary).
struct ExpectedStream {
    struct Frame {
        var header: FrameHeader
        var payload: Range<Int>
    }

    var frames: [Frame] = []
    var end: FrameError?

    init(_ stream: [UInt8], maxPayload: Int) {
        var position = 0
        while true {
            let remaining = stream.count - position
            if remaining == 0 { return }
            let headerBytes = Array(stream[position..<(position + min(remaining, FrameHeader.size))])
            if remaining < FrameHeader.size {
                let prefix = headerBytes.withUnsafeBytes { b in
                    Result { () throws(FrameError) in try FrameHeader.validatePrefix(b, maxPayload: maxPayload) }
                }
                switch prefix {
                case .success: end = .closedInHeader(received: remaining, expected: FrameHeader.size)
                case let .failure(error): end = error
                }
                return
            }
            let header = FrameHeader(decoding: headerBytes)
            do throws(FrameError) {
                try header.validate(maxPayload: maxPayload)
            } catch {
                end = error
                return
            }
            let headerLength = Int(header.headerLength)
            let payloadLength = Int(header.payloadLength)
            if remaining < headerLength {
                end = .closedInHeader(received: remaining, expected: headerLength)
                return
            }
            if remaining - headerLength < payloadLength {
                end = .closedInPayload(received: remaining - headerLength, expected: payloadLength)
                return
            }
            let payload = (position + headerLength)..<(position + headerLength + payloadLength)
            if header.hasPayloadCRC {
                let computed = Array(stream[payload]).withUnsafeBytes { CRC32C.portableChecksum($0) }
                if computed != header.payloadCRC32C {
                    end = .checksumMismatch(sequence: header.sequence, expected: header.payloadCRC32C, computed: computed)
                    return
                }
            }
            frames.append(Frame(header: header, payload: payload))
            position = payload.upperBound
        }
    }
}
