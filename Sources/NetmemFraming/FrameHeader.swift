/// The fixed 32-byte header of a Netmem frame (see DESIGN.md, "The frame format").
/// All integers are little-endian on the wire. A frame is this header, then
/// `headerLength - 32` bytes of extension (skipped by receivers that don't know it),
/// then `payloadLength` bytes of payload.
public struct FrameHeader: Sendable, Hashable, CustomStringConvertible {
    /// "NMEM" read as a little-endian 32-bit integer.
    public static let magic: UInt32 = 0x4D45_4D4E
    /// The format version this library writes and the only one `validate` accepts.
    public static let currentVersion: UInt8 = 1
    /// Bytes of the fixed header.
    public static let size = 32
    /// The largest `header_length` a receiver accepts (fixed header plus extension).
    public static let maxHeaderLength = 4096

    /// Bits of the `flags` byte.
    public struct Flags: OptionSet, Sendable, Hashable {
        /// The `flags` byte as on the wire.
        public let rawValue: UInt8
        /// Flags from the `flags` byte.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `payload_crc32c` holds the CRC-32C of the payload.
        public static let payloadCRC32C = Flags(rawValue: 1 << 0)
    }

    /// Bytes 0–3: `FrameHeader.magic` in a valid frame.
    public var magic: UInt32
    /// Byte 4: the format version, `currentVersion` in a valid frame.
    public var version: UInt8
    /// Byte 5: which optional fields are in use.
    public var flags: Flags
    /// Fixed header plus extension, in bytes (≥ 32).
    public var headerLength: UInt16
    /// Bytes 8–11: the stream the frame belongs to, as the sender numbered it.
    public var streamID: UInt32
    /// Bytes 12–15: payload bytes after the header and its extension.
    public var payloadLength: UInt32
    /// Bytes 16–23: the frame's sequence number; the parser counts a gap when it is not the previous plus one.
    public var sequence: UInt64
    /// Bytes 24–27: the CRC-32C of the payload when the `payloadCRC32C` flag is set, else 0.
    public var payloadCRC32C: UInt32
    /// Bytes 28–31: written as 0; receivers do not check it.
    public var reserved: UInt32

    /// A valid header for a payload of `payloadLength` bytes. Set `crc` to carry a
    /// payload checksum (and the `payloadCRC32C` flag).
    public init(streamID: UInt32 = 0, sequence: UInt64, payloadLength: UInt32, crc: UInt32? = nil,
                extensionLength: Int = 0) {
        precondition(extensionLength >= 0 && extensionLength <= Self.maxHeaderLength - Self.size,
                     "frame header extension of \(extensionLength) bytes is out of range")
        self.magic = Self.magic
        self.version = Self.currentVersion
        self.flags = crc == nil ? [] : .payloadCRC32C
        self.headerLength = UInt16(Self.size + extensionLength)
        self.streamID = streamID
        self.payloadLength = payloadLength
        self.sequence = sequence
        self.payloadCRC32C = crc ?? 0
        self.reserved = 0
    }

    /// Reads the fixed header from the first 32 bytes of `bytes`, without validating it.
    public init(decoding bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.size, "a frame header needs \(Self.size) bytes, got \(bytes.count)")
        func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        magic = le(0, UInt32.self)
        version = bytes[4]
        flags = Flags(rawValue: bytes[5])
        headerLength = le(6, UInt16.self)
        streamID = le(8, UInt32.self)
        payloadLength = le(12, UInt32.self)
        sequence = le(16, UInt64.self)
        payloadCRC32C = le(24, UInt32.self)
        reserved = le(28, UInt32.self)
    }

    /// Reads the fixed header from the first 32 bytes of an array.
    public init(decoding bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { FrameHeader(decoding: $0) }
    }

    /// Writes the fixed header into the first 32 bytes of `buffer` (extension bytes, if
    /// any, are the caller's).
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.size, "a frame header needs \(Self.size) bytes, got \(buffer.count)")
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        }
        put(magic, 0)
        buffer[4] = version
        buffer[5] = flags.rawValue
        put(headerLength, 6)
        put(streamID, 8)
        put(payloadLength, 12)
        put(sequence, 16)
        put(payloadCRC32C, 24)
        put(reserved, 28)
    }

    /// The encoded fixed header (32 bytes) followed by `headerLength - 32` zero bytes.
    public var encoded: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max(Int(headerLength), Self.size))
        bytes.withUnsafeMutableBytes { encode(into: $0) }
        return bytes
    }

    /// Checks the fields a receiver must check, in wire order, and throws the first
    /// one that is wrong: magic, version, header length (32…4096), payload length
    /// (at most `maxPayload`).
    public func validate(maxPayload: Int) throws(FrameError) {
        guard magic == Self.magic else { throw .badMagic(magic) }
        guard version == Self.currentVersion else { throw .badVersion(version) }
        guard Int(headerLength) >= Self.size else { throw .headerLengthTooSmall(headerLength) }
        guard Int(headerLength) <= Self.maxHeaderLength else { throw .headerLengthTooLarge(headerLength) }
        guard Int(payloadLength) <= maxPayload else { throw .payloadTooLarge(payloadLength, maximum: maxPayload) }
    }

    /// Checks the fields that lie wholly inside `prefix` (the first bytes of a header
    /// still being received), as `validate` would.
    public static func validatePrefix(_ prefix: UnsafeRawBufferPointer, maxPayload: Int) throws(FrameError) {
        if prefix.count >= 4 {
            let magic = UInt32(littleEndian: prefix.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            guard magic == Self.magic else { throw .badMagic(magic) }
        }
        if prefix.count >= 5 {
            guard prefix[4] == Self.currentVersion else { throw .badVersion(prefix[4]) }
        }
        if prefix.count >= 8 {
            let length = UInt16(littleEndian: prefix.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            guard Int(length) >= Self.size else { throw .headerLengthTooSmall(length) }
            guard Int(length) <= Self.maxHeaderLength else { throw .headerLengthTooLarge(length) }
        }
        if prefix.count >= 16 {
            let payload = UInt32(littleEndian: prefix.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
            guard Int(payload) <= maxPayload else { throw .payloadTooLarge(payload, maximum: maxPayload) }
        }
    }

    /// Whether the payload carries a CRC-32C.
    public var hasPayloadCRC: Bool { flags.contains(.payloadCRC32C) }

    public var description: String {
        "frame(stream \(streamID), seq \(sequence), \(payloadLength) bytes"
            + (hasPayloadCRC ? ", crc32c \(hex(payloadCRC32C)))" : ")")
    }
}

@inline(never)
func hex<T: FixedWidthInteger>(_ value: T) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, T.bitWidth / 4 - digits.count)) + digits
}
