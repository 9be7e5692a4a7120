import SystemPackage

/// Writes frames in the Netmem frame format: numbers them, checksums their payload when
/// asked, and sends header and payload together (one `sendmsg` with two iovecs).
public struct FrameWriter: Sendable {
    public var streamID: UInt32
    /// The sequence number of the next frame.
    public var nextSequence: UInt64
    /// Whether frames carry a CRC-32C of their payload.
    public var checksums: Bool
    /// Frames written so far.
    public private(set) var framesWritten = 0
    private var headerBytes = [UInt8](repeating: 0, count: FrameHeader.size)

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

    /// Sends one frame carrying `payload` on a blocking socket.
    public mutating func write(_ payload: UnsafeRawBufferPointer, to socket: FileDescriptor) throws(Errno) {
        let header = nextHeader(for: payload)
        let result: Result<Void, Errno> = headerBytes.withUnsafeMutableBytes { h in
            header.encode(into: h)
            do throws(Errno) {
                try BlockingSocket.sendAll(socket, UnsafeRawBufferPointer(h), payload)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// One frame as bytes (header then payload), for tests and files.
    public mutating func encode(_ payload: [UInt8]) -> [UInt8] {
        let header = payload.withUnsafeBytes { nextHeader(for: $0) }
        return header.encoded + payload
    }
}
