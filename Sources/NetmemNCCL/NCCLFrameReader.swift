import CNetmemCRC32C
import CNetmemNCCL
import Glibc

/// Parses one socket's stream on its receive thread: 48-byte frame headers (which may
/// span received pieces) and data payloads, placed (copied, on the host path) into the
/// posted buffer of the message they belong to, at the offset the header names.
final class NCCLFrameReader {
    let crc: Bool
    let placement: any NCCLPayloadPlacement
    var broken = false
    private var header = [UInt8](repeating: 0, count: NCCLWireFrame.size)
    private var headerFill = 0
    /// The data piece being received.
    private var request: NCCLRequest?
    /// Where the next payload byte goes in the message.
    private var offset = 0
    private var left = 0
    private var expectedCRC: UInt32?
    private var runningCRC: UInt32 = 0
    private var pieceLength = 0

    /// `placeMin`: payloads of at least this many bytes are received in place (0: none).
    init(crc: Bool, placeMin: Int = 16 << 10, placement: any NCCLPayloadPlacement = NCCLHostCopy()) {
        self.crc = crc
        self.placeMin = placeMin
        self.placement = placement
    }

    /// Whether the lane stopped between pieces (no header or payload half read).
    var isBetweenPieces: Bool { headerFill == 0 && request == nil && left == 0 }

    /// Payloads of at least this many bytes are received straight into NCCL's buffer;
    /// shorter ones come through the pool together with the header after them (0: all).
    let placeMin: Int

    /// What the socket's next read must be.
    enum NextRead {
        /// A read through the pool of at most this many bytes.
        case limit(Int)
        /// The rest of the payload in progress, straight into NCCL's buffer.
        case place(UnsafeMutableRawBufferPointer)
    }

    /// The next read, from where the stream stands: the rest of a header, a short payload
    /// and the header after it, or a long payload in place.
    var nextRead: NextRead {
        if left == 0 { return .limit(NCCLWireFrame.size - headerFill) }
        if placeMin > 0, left >= placeMin, placement.receivesInPlace, let data = request?.data {
            return .place(UnsafeMutableRawBufferPointer(start: data + offset, count: left))
        }
        return .limit(left + NCCLWireFrame.size)
    }

    /// Whether a placement is under way (its rest arrives in later `.placed` events).
    var isPlacing: Bool { placing }
    private var placing = false

    /// Notes that the `.place` read was asked for.
    func placementStarted() { placing = true }

    /// `n` bytes of the payload in progress landed in place.
    func placed(_ n: Int, comm: NCCLRecvComm) throws(NCCLError) {
        guard placing, let r = request, n <= left else {
            throw NCCLError(.system, "receive engine placed \(n) bytes with \(left) expected")
        }
        if expectedCRC != nil { runningCRC = cnm_crc32c(runningCRC, r.data! + offset, n) }
        offset += n
        left -= n
        if left == 0 {
            placing = false
            try pieceDone(comm)
        }
    }

    func consume(_ bytes: UnsafeRawBufferPointer, comm: NCCLRecvComm) throws(NCCLError) {
        var at = 0
        while at < bytes.count {
            if left > 0 {
                let n = min(left, bytes.count - at)
                let piece = UnsafeRawBufferPointer(rebasing: bytes[at..<at + n])
                placement.place(piece, into: request!, at: offset)
                if expectedCRC != nil { runningCRC = cnm_crc32c(runningCRC, piece.baseAddress, n) }
                offset += n
                left -= n
                at += n
                if left == 0 { try pieceDone(comm) }
                continue
            }
            let n = min(NCCLWireFrame.size - headerFill, bytes.count - at)
            header.withUnsafeMutableBytes { h in
                (h.baseAddress! + headerFill).copyMemory(from: bytes.baseAddress! + at, byteCount: n)
            }
            headerFill += n
            at += n
            if headerFill == NCCLWireFrame.size {
                headerFill = 0
                let frame = try header.withUnsafeBytes { raw in
                    Result { () throws(NCCLError) in try NCCLWireFrame.decode(raw) }
                }.get()
                try start(frame, comm)
            }
        }
    }

    private func start(_ frame: NCCLWireFrame, _ comm: NCCLRecvComm) throws(NCCLError) {
        switch frame {
        case let .data(sequence, total, offset, length, crc):
            let r = try comm.request(for: sequence)
            guard total <= UInt64(r.capacity) else {
                throw NCCLError(.remote, "sender's message \(sequence) has \(total) bytes for a receive of \(r.capacity) (its credit said so)")
            }
            guard offset <= total, UInt64(length) <= total - offset else {
                throw NCCLError(.remote, "message \(sequence): piece at \(offset) of \(length) bytes lies outside its \(total) bytes")
            }
            if self.crc != (crc != nil) {
                throw NCCLError(.remote, "message \(sequence): payload CRC \(crc == nil ? "missing" : "present") but this comm \(self.crc ? "requires" : "does not use") one")
            }
            let (first, known) = r.total.compareExchange(expected: -1, desired: Int(total), ordering: .relaxed)
            if !first && known != Int(total) {
                throw NCCLError(.remote, "message \(sequence): pieces disagree on its size (\(known) and \(total))")
            }
            request = r
            self.offset = Int(offset)
            left = length
            pieceLength = length
            expectedCRC = crc
            runningCRC = 0
            if length == 0 { try pieceDone(comm) }
        case let .refused(sequence, sendSize, receiveSize):
            let r = try comm.request(for: sequence)
            comm.finished(r, error: NCCLError(.invalidUsage, "\(comm.label): the peer's send of \(sendSize) bytes (message \(sequence)) is larger than this receive of \(receiveSize) bytes"))
        case .hello, .credit:
            throw NCCLError(.remote, "sender sent \(frame) on a data socket")
        }
    }

    private func pieceDone(_ comm: NCCLRecvComm) throws(NCCLError) {
        guard let r = request else { return }
        request = nil
        if let expected = expectedCRC, expected != runningCRC {
            throw NCCLError(.remote, "message \(r.sequence): payload CRC-32C 0x\(String(runningCRC, radix: 16)) differs from the sender's 0x\(String(expected, radix: 16))")
        }
        let placed = r.placed.add(pieceLength, ordering: .acquiringAndReleasing).newValue
        if placed == r.total.load(ordering: .relaxed) { comm.finished(r) }
    }
}
