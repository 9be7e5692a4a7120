import Glibc
import Synchronization
import SystemPackage

/// The receiving end of a connection: `irecv` posts a request and sends the sender a
/// credit (message number, buffer size) on socket 0; each socket's receive engine thread
/// parses its frames and copies each piece's payload into the posted buffer of its
/// message (the host-memory path). A receive is done when all bytes of its message have
/// been placed.
final class NCCLRecvComm: NCCLComm, @unchecked Sendable {
    /// One receive engine (pool, ring, thread) per socket, so a comm with several
    /// sockets receives on several cores.
    private var engines: [NCCLReceiveEngine] = []
    /// A duplicate of socket 0 for writing credits (the engine owns and closes the
    /// original; this one stays valid until `close`).
    private let creditSocket: FileDescriptor
    /// Posted receives by message number; RX thread and proxy thread.
    private let posted = Mutex<[UInt64: NCCLRequest]>([:])
    private let proxy = Mutex(ProxyState())
    /// One engine's readers by connection; touched by that engine's thread only.
    private final class EngineState: @unchecked Sendable {
        var readers: [UInt64: NCCLFrameReader] = [:]
        unowned let engine: NCCLReceiveEngine
        init(engine: NCCLReceiveEngine) { self.engine = engine }
    }
    private let closing = Atomic<Bool>(false)
    /// Data sockets whose sender has not closed them yet.
    private let openLanes = Atomic<Int>(0)

    struct ProxyState {
        var nextSequence: UInt64 = 0
        /// Credit bytes the socket did not take yet.
        var outbox: [UInt8] = []
    }

    init(context: NCCLContext, label: String, sockets: [FileDescriptor]) throws(NCCLError) {
        do throws(Errno) {
            creditSocket = try NCCLSocket.duplicate(sockets[0])
        } catch {
            for s in sockets { _ = try? s.close() }
            throw NCCLError.system("dup of the credit socket", error)
        }
        super.init(context: context, label: label, kind: .receive)
        let config = context.configuration
        var left = sockets
        openLanes.store(sockets.count, ordering: .relaxed)
        do throws(NCCLError) {
            for i in sockets.indices {
                let engine = try NCCLReceiveEngine(sockets: [left.removeFirst()], chunkSize: config.rxChunk,
                                                   buffers: config.rxBuffers, name: "nccl-rx\(i)")
                engines.append(engine)
                let state = EngineState(engine: engine)
                try engine.start(name: "netmem-rx\(i)") { [unowned self] event in self.handle(event, state) }
                NCCLStatistics.shared.threadsStarted.add(1, ordering: .relaxed)
            }
        } catch {
            for s in left { _ = try? s.close() }
            for e in engines { e.stop() }
            _ = try? creditSocket.close()
            throw error
        }
        NCCLStatistics.shared.commsOpened.add(1, ordering: .relaxed)
    }

    /// Mirrors `irecv` with one buffer (`maxRecvs` is 1).
    func irecv(data: UnsafeMutableRawPointer?, size: Int, region: NCCLMemoryRegion?) throws(NCCLError) -> NCCLRequest? {
        try checkHealthy()
        guard size >= 0, size <= NCCLPlugin.maxMessageSize else {
            throw NCCLError(.invalidArgument, "\(label): irecv of \(size) bytes (at most \(NCCLPlugin.maxMessageSize))")
        }
        guard size == 0 || data != nil else { throw NCCLError(.invalidArgument, "\(label): irecv of \(size) bytes into NULL") }
        return try proxy.withLockChecked { st throws(NCCLError) -> NCCLRequest? in
            try flushCredits(&st)
            guard let r = requests.take() else { return nil }
            r.data = data
            r.capacity = size
            r.sequence = st.nextSequence
            st.nextSequence += 1
            requests.post(r)
            posted.withLockChecked { $0[r.sequence] = r }
            NCCLStatistics.shared.receivesPosted.add(1, ordering: .relaxed)
            withUnsafeTemporaryAllocation(byteCount: NCCLWireFrame.size, alignment: 8) { raw in
                NCCLWireFrame.credit(sequence: r.sequence, capacity: UInt64(size)).encode(into: raw.baseAddress!)
                st.outbox.append(contentsOf: UnsafeRawBufferPointer(raw))
            }
            try flushCredits(&st)
            return r
        }
    }

    /// Writes credits the socket could not take before; from `test` and `irecv`.
    override func progress() throws(NCCLError) {
        try checkHealthy()
        try proxy.withLockChecked { st throws(NCCLError) in try flushCredits(&st) }
    }

    private func flushCredits(_ st: inout ProxyState) throws(NCCLError) {
        guard !st.outbox.isEmpty else { return }
        do throws(Errno) {
            let fd = creditSocket
            let n = try st.outbox.withUnsafeBytes { raw in Result { () throws(Errno) in try NCCLSocket.sendNow(fd, raw) } }.get()
            st.outbox.removeFirst(n)
        } catch {
            let e = NCCLError(.remote, "sending a credit to the sender failed: \(error)")
            fail(e)
            throw e
        }
    }

    /// Mirrors `closeRecv`: ends the engine (its thread and sockets) and the credit socket.
    func close() {
        closing.store(true, ordering: .releasing)
        for e in engines {
            e.stop()
            let s = e.statistics
            NCCLStatistics.shared.receiveCompletions.add(s.completions, ordering: .relaxed)
            NCCLStatistics.shared.receiveBackpressure.add(s.enobufs, ordering: .relaxed)
            NCCLStatistics.shared.threadsJoined.add(1, ordering: .relaxed)
        }
        _ = try? creditSocket.close()
        NCCLStatistics.shared.commsClosed.add(1, ordering: .relaxed)
        if failedBadly { NCCLStatistics.shared.commsFailed.add(1, ordering: .relaxed) }
    }

    // MARK: RX thread

    private func handle(_ event: NCCLReceiveEngine.Event, _ state: EngineState) {
        switch event {
        case let .opened(c):
            state.readers[c] = NCCLFrameReader(crc: configuration.crc, placeMin: configuration.placeMin)
        case let .bytes(c, bytes):
            guard let reader = state.readers[c], !reader.broken else { return }
            NCCLStatistics.shared.receiveSegments.add(1, ordering: .relaxed)
            NCCLStatistics.shared.bytesReceived.add(bytes.count, ordering: .relaxed)
            do throws(NCCLError) {
                try reader.consume(bytes, comm: self)
                askNextRead(c, reader, state.engine)
            } catch {
                reader.broken = true
                fail(error)
            }
        case let .placed(c, n):
            guard let reader = state.readers[c], !reader.broken else { return }
            NCCLStatistics.shared.bytesReceived.add(n, ordering: .relaxed)
            NCCLStatistics.shared.bytesPlaced.add(n, ordering: .relaxed)
            do throws(NCCLError) {
                try reader.placed(n, comm: self)
                if !reader.isPlacing { askNextRead(c, reader, state.engine) }
            } catch {
                reader.broken = true
                fail(error)
            }
        case let .ended(c, reason, clean):
            let reader = state.readers.removeValue(forKey: c)
            let lanesLeft = openLanes.subtract(1, ordering: .acquiringAndReleasing).newValue
            guard !closing.load(ordering: .acquiring) else { return }
            if !clean {
                fail(NCCLError(.remote, "connection to the sender failed: \(reason)"))
            } else if !(reader?.isBetweenPieces ?? true) {
                fail(NCCLError(.remote, "the sender closed a data connection in the middle of a message (peer process ended?)"))
            } else if lanesLeft == 0 {
                // Every lane delivered all it had before its end: what is still posted now
                // will never arrive.
                fail(NCCLError(.remote, "the sender closed the connection (peer process ended?)"),
                     quietly: requests.outstanding == 0)
            }
            // Otherwise other lanes still carry the rest of the messages in flight.
        case let .failed(why):
            if !closing.load(ordering: .acquiring) { fail(NCCLError(.system, "receive loop failed: \(why)")) }
        }
    }

    /// Tells the engine what the socket's next read is (RX thread, in the handler, so it
    /// applies before the socket is read again).
    private func askNextRead(_ connection: UInt64, _ reader: NCCLFrameReader, _ engine: NCCLReceiveEngine) {
        switch reader.nextRead {
        case let .limit(bytes):
            engine.limitNextRead(connection: connection, to: bytes)
        case let .place(buffer):
            reader.placementStarted()
            engine.placeNext(connection: connection, into: buffer)
        }
    }

    /// The posted receive for message `sequence` (RX thread), or a protocol error: a
    /// sender only sends messages it has a credit for.
    func request(for sequence: UInt64) throws(NCCLError) -> NCCLRequest {
        guard let r = posted.withLockChecked({ $0[sequence] }) else {
            throw NCCLError(.remote, "sender sent message \(sequence), which has no posted receive (no credit was given for it)")
        }
        return r
    }

    /// The RX thread finished message `r`.
    func finished(_ r: NCCLRequest, error: NCCLError? = nil) {
        posted.withLockChecked { _ = $0.removeValue(forKey: r.sequence) }
        if let error {
            r.fail(error)
        } else {
            r.complete(size: r.placed.load(ordering: .acquiring))
        }
    }
}
