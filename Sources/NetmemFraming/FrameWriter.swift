/// Makes frames in the Netmem frame format: numbers them and checksums their payload
/// when asked. It has no transport: `FramedSender` (NetmemSession) sends what it makes.
public struct FrameWriter: Sendable {
    /// The stream ID written into every frame's header.
    public var streamID: UInt32
    /// The sequence number of the next frame.
    public var nextSequence: UInt64
    /// Whether frames carry a CRC-32C of their payload.
    public var checksums: Bool
    /// Frames written so far.
    public private(set) var framesWritten = 0

    /// A writer whose first frame carries sequence number `firstSequence`.
    public init(streamID: UInt32 = 0, firstSequence: UInt64 = 0, checksums: Bool = true) {
        self.streamID = streamID
        self.nextSequence = firstSequence
        self.checksums = checksums
    }

    /// The header of the next frame, for a payload of these bytes; advances the sequence.
    public mutating func nextHeader(for payload: UnsafeRawBufferPointer) -> FrameHeader {
        precondition(payload.count <= Int(UInt32.max), "a frame payload is at most 4 GiB - 1 bytes")
        let header = FrameHeader(streamID: streamID, sequence: nextSequence, payloadLength: UInt32(payload.count),
                                 crc: checksums ? CRC32C.checksum(payload) : nil)
        nextSequence &+= 1
        framesWritten += 1
        return header
    }

    /// One frame as bytes (header then payload), for tests and files.
    public mutating func encode(_ payload: [UInt8]) -> [UInt8] {
        let header = payload.withUnsafeBytes { nextHeader(for: $0) }
        return header.encoded + payload
    }
}
