import CNetmemLinux
import Glibc
import Synchronization
import SystemPackage

/// The sending end of a connection: `isend` waits (returns no request) until the
/// receiver's credit for the next message has come, then splits the message into pieces
/// over the comm's sockets, each sent by that socket's lane thread with SEND_ZC. A send
/// is done when every piece is sent and the kernel no longer reads its memory.
final class NCCLSendComm: NCCLComm, @unchecked Sendable {
    let sockets: [FileDescriptor]
    /// Whether pieces carry a payload CRC-32C (the listener's choice, from its handle).
    let crc: Bool
    private(set) var lanes: [NCCLSendLane] = []
    private let proxy = Mutex(ProxyState())

    /// State of the thread that calls isend/test (NCCL's proxy thread).
    struct ProxyState {
        var nextSequence: UInt64 = 0
        var nextCredit: UInt64 = 0
        var credits: [(sequence: UInt64, capacity: UInt64)] = []
        var inbox: [UInt8] = []
        var nextLane = 0
        var closed = false
        /// When `progress` last read the socket (ns).
        var lastRead: UInt64 = 0
    }

    /// Takes the connected sockets (socket 0 also carries credits back) and starts a lane
    /// thread per socket.
    init(context: NCCLContext, label: String, sockets: [FileDescriptor], crc: Bool) throws(NCCLError) {
        self.sockets = sockets
        self.crc = crc
        super.init(context: context, label: label, kind: .send)
        for (i, s) in sockets.enumerated() {
            lanes.append(NCCLSendLane(index: i, comm: self, socket: s))
        }
        do throws(NCCLError) {
            for lane in lanes { try lane.start() }
        } catch {
            close()
            throw error
        }
        NCCLStatistics.shared.commsOpened.add(1, ordering: .relaxed)
    }

    /// Mirrors `isend`: a request, or nil when the receiver has not posted the matching
    /// receive yet (NCCL calls again).
    func isend(data: UnsafeMutableRawPointer?, size: Int, region: NCCLMemoryRegion?) throws(NCCLError) -> NCCLRequest? {
        try checkHealthy()
        guard size >= 0, size <= NCCLPlugin.maxMessageSize else {
            throw NCCLError(.invalidArgument, "\(label): isend of \(size) bytes (at most \(NCCLPlugin.maxMessageSize))")
        }
        guard size == 0 || data != nil else { throw NCCLError(.invalidArgument, "\(label): isend of \(size) bytes from NULL") }
        return try proxy.withLockChecked { st throws(NCCLError) -> NCCLRequest? in
            try readCredits(&st)
            guard let credit = st.credits.first else {
                NCCLStatistics.shared.sendsDeferred.add(1, ordering: .relaxed)
                return nil
            }
            guard let r = requests.take() else { return nil }
            st.credits.removeFirst()
            r.data = data
            r.capacity = size
            r.sequence = st.nextSequence
            st.nextSequence += 1
            NCCLStatistics.shared.sendsPosted.add(1, ordering: .relaxed)
            if UInt64(size) > credit.capacity {
                requests.post(r)
                r.fail(NCCLError(.invalidUsage, "\(label): send of \(size) bytes (message \(r.sequence)) is larger than the peer's receive of \(credit.capacity) bytes"))
                lanes[0].enqueue(.frame(.refused(sequence: r.sequence, sendSize: UInt64(size), receiveSize: credit.capacity)))
                return r
            }
            let count = pieceCount(size)
            let piece = (size + count - 1) / max(count, 1)
            r.piecesLeft.store(count, ordering: .relaxed)
            requests.post(r)
            for j in 0..<count {
                let offset = j * piece
                let length = min(piece, size - offset)
                let lane = lanes[(st.nextLane + j) % lanes.count]
                lane.enqueue(.piece(NCCLSendLane.Piece(request: r, offset: offset, length: max(length, 0), total: size)))
            }
            st.nextLane = (st.nextLane + count) % lanes.count
            return r
        }
    }

    /// How many pieces a message of `size` bytes is split into: one per socket, none
    /// smaller than `minChunk`, at least one (a zero-byte message is one empty piece).
    func pieceCount(_ size: Int) -> Int {
        max(1, min(lanes.count, size / max(configuration.minChunk, 1)))
    }

    /// Reads credits (and notices a dead peer) without waiting; from `test`, which NCCL
    /// calls in a tight loop: at most one read every 50 µs. (The lanes notice a dead peer
    /// on their own when they send.)
    override func progress() throws(NCCLError) {
        try checkHealthy()
        try proxy.withLockChecked { st throws(NCCLError) in
            let now = cnm_now_ns()
            guard now &- st.lastRead >= 50_000 else { return }
            st.lastRead = now
            try readCredits(&st)
        }
    }

    private func readCredits(_ st: inout ProxyState) throws(NCCLError) {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                      UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // two frames at a time
        while true {
            let n: Int?
            do throws(Errno) {
                let fd = sockets[0]
                n = try withUnsafeMutableBytes(of: &buffer) { raw in
                    Result { () throws(Errno) in try NCCLSocket.receiveNow(fd, into: raw) }
                }.get()
            } catch {
                let e = NCCLError(.remote, "connection to the receiver failed: \(error)")
                fail(e)
                throw e
            }
            guard let n else { return }
            if n == 0 {
                let e = NCCLError(.remote, "the receiver closed the connection (peer process ended?)")
                fail(e)
                throw e
            }
            withUnsafeBytes(of: &buffer) { st.inbox.append(contentsOf: $0[..<n]) }
            var used = 0
            while st.inbox.count - used >= NCCLWireFrame.size {
                let frame: NCCLWireFrame
                do throws(NCCLError) {
                    let at = used
                    frame = try st.inbox.withUnsafeBytes { raw in
                        Result { () throws(NCCLError) in
                            try NCCLWireFrame.decode(UnsafeRawBufferPointer(rebasing: raw[at..<at + NCCLWireFrame.size]))
                        }
                    }.get()
                } catch {
                    fail(error)
                    throw error
                }
                used += NCCLWireFrame.size
                guard case let .credit(sequence, capacity) = frame, sequence == st.nextCredit else {
                    let e = NCCLError(.remote, "receiver sent \(frame) where credit \(st.nextCredit) was due")
                    fail(e)
                    throw e
                }
                st.nextCredit += 1
                st.credits.append((sequence, capacity))
            }
            st.inbox.removeFirst(used)
        }
    }

    /// Mirrors `closeSend`: stops the lanes (breaking sends stuck on a dead peer), joins
    /// their threads, closes the sockets.
    func close() {
        let abandon = error != nil || requests.outstanding > 0
        for lane in lanes { lane.requestStop(abandon: abandon) }
        if abandon { for s in sockets { NCCLSocket.shutdownBoth(s) } }
        for lane in lanes { lane.join() }
        for s in sockets { _ = try? s.close() }
        NCCLStatistics.shared.commsClosed.add(1, ordering: .relaxed)
        if failedBadly { NCCLStatistics.shared.commsFailed.add(1, ordering: .relaxed) }
    }
}
