import CNetmemCRC32C
import Glibc
import NetmemURing
import Synchronization
import SystemPackage

/// One socket of a send comm and the thread that sends on it: pieces of messages in
/// posting order, each as a 48-byte header (plain send) and its payload (SEND_ZC from
/// NCCL's memory, from a registered buffer when the memory was registered with `regMr`).
/// Short payloads go as one plain send with their header. A piece counts as sent when
/// the kernel has taken it and, for SEND_ZC, its notification says the memory is free.
final class NCCLSendLane: @unchecked Sendable {
    struct Piece {
        let request: NCCLRequest
        let offset: Int
        let length: Int
        let total: Int
    }

    enum Job {
        case piece(Piece)
        /// A frame without payload (e.g. `refused`).
        case frame(NCCLWireFrame)
    }

    let index: Int
    unowned let comm: NCCLSendComm
    let socket: FileDescriptor
    private let queue = Mutex<[Job]>([])
    private let event = NCCLEvent()
    private let stopping = Atomic<Bool>(false)
    private let abandoning = Atomic<Bool>(false)
    private var thread: NCCLThread?

    init(index: Int, comm: NCCLSendComm, socket: FileDescriptor) {
        self.index = index
        self.comm = comm
        self.socket = socket
    }

    func start() throws(NCCLError) {
        thread = try NCCLThread(name: "netmem-tx\(index)") { [self] in run() }
        NCCLStatistics.shared.threadsStarted.add(1, ordering: .relaxed)
    }

    func enqueue(_ job: Job) {
        queue.withLockChecked { $0.append(job) }
        event.signal()
    }

    /// Asks the thread to end once its queue is empty; with `abandon`, at once (the comm
    /// failed or is closed with sends in flight).
    func requestStop(abandon: Bool) {
        if abandon { abandoning.store(true, ordering: .releasing) }
        stopping.store(true, ordering: .releasing)
        event.signal()
    }

    func join() {
        guard let thread else { return }
        thread.join()
        self.thread = nil
        NCCLStatistics.shared.threadsJoined.add(1, ordering: .relaxed)
    }

    // MARK: The lane thread

    private func run() {
        let config = comm.configuration
        let sender: ZeroCopySender
        do {
            sender = try ZeroCopySender(socket: socket, entries: 64, zeroCopy: config.zeroCopy != .off)
        } catch {
            comm.fail(NCCLError(.system, "socket \(index): io_uring for sending: \(error)"))
            drainFailed()
            return
        }
        var state = LaneState(sender: sender, config: config)
        state.zeroCopy = config.zeroCopy != .off
        state.bounce = .allocate(byteCount: NCCLWireFrame.size + config.zeroCopyMin, alignment: 64)
        defer { state.bounce.deallocate() }
        let timeout = Duration.seconds(config.peerTimeoutSeconds)

        while true {
            let seen = event.current
            if abandoning.load(ordering: .acquiring) { break }
            if let job = queue.withLockChecked({ q -> Job? in q.isEmpty ? nil : q.removeFirst() }) {
                if comm.error != nil { continue }  // failed comm: drop the job (its request has failed)
                do throws(URingError) {
                    try syncRegistration(&state)
                    try send(job, &state, timeout: timeout)
                } catch {
                    comm.fail(laneError(error))
                }
                state.publish()
                continue
            }
            if !state.waiting.isEmpty {
                finishNotified(&state)
                if !state.waiting.isEmpty {
                    // Sleep in the ring until a notification comes (or look at the queue again soon).
                    do throws(URingError) {
                        try state.sender.waitUntilReusable(tag: state.waiting[0].tag, timeout: .microseconds(200))
                    } catch {
                        if case .timedOut = error {} else { comm.fail(laneError(error)) }
                    }
                    finishNotified(&state)
                }
                state.publish()
                continue
            }
            if stopping.load(ordering: .acquiring) { break }
            event.wait(seen: seen, timeout: .milliseconds(100))
        }
        if !abandoning.load(ordering: .acquiring) && comm.error == nil {
            try? state.sender.drain(timeout: .seconds(2))
            finishNotified(&state)
        }
        state.publish()
        let s = state.sender.statistics
        comm.context.log(.info, "\(comm.label) socket \(index): \(s.sends) sends, \(s.zeroCopySends) zero-copy (\(s.fixedBufferSends) from registered buffers), \(s.copiedByKernel) of \(s.notifications) notified copied by the kernel anyway")
        drainFailed()
    }

    /// Thread-local state of a lane.
    private struct LaneState {
        let sender: ZeroCopySender
        let config: NCCLConfiguration
        var bounce: UnsafeMutableRawPointer = UnsafeMutableRawPointer(bitPattern: 64)!
        var generation: UInt64 = 0
        /// Whether payloads still go as SEND_ZC (see `NCCLConfiguration.ZeroCopy.auto`).
        var zeroCopy = true
        var autoDecided = false
        var nextTag: UInt32 = 1
        /// Pieces sent with SEND_ZC whose notification has not come yet, oldest first.
        var waiting: [(tag: UInt32, request: NCCLRequest)] = []
        /// The sender's counters at the last `publish`: zc, copied, fixed, plain, bytes.
        var published = (0, 0, 0, 0, 0)

        init(sender: ZeroCopySender, config: NCCLConfiguration) {
            self.sender = sender
            self.config = config
        }

        /// Adds the sender's counters since the last call to the process-wide ones.
        mutating func publish() {
            let s = sender.statistics
            let g = NCCLStatistics.shared
            g.zeroCopySends.add(s.zeroCopySends - published.0, ordering: .relaxed)
            g.copiedByKernel.add(s.copiedByKernel - published.1, ordering: .relaxed)
            g.fixedBufferSends.add(s.fixedBufferSends - published.2, ordering: .relaxed)
            g.plainSends.add(s.plainSends - published.3, ordering: .relaxed)
            g.bytesSent.add(s.bytesSent - published.4, ordering: .relaxed)
            published = (s.zeroCopySends, s.copiedByKernel, s.fixedBufferSends, s.plainSends, s.bytesSent)
        }
    }

    /// Registers the comm's `regMr` memory with this lane's ring when it changed (a
    /// registration that fails leaves sends unregistered, still zero-copy).
    private func syncRegistration(_ state: inout LaneState) throws(URingError) {
        let generation = comm.regionGeneration.load(ordering: .acquiring)
        guard generation != state.generation else { return }
        state.generation = generation
        var buffers: [UnsafeMutableRawBufferPointer] = []
        for region in comm.regions.withLockChecked({ $0 }) where region.type == 1 {
            var off = 0
            while off < region.size {  // at most 1 GiB per registered buffer
                let n = min(1 << 30, region.size - off)
                buffers.append(UnsafeMutableRawBufferPointer(start: region.base + off, count: n))
                off += n
            }
        }
        do throws(URingError) {
            try state.sender.register(buffers: buffers)
        } catch {
            if !buffers.isEmpty {
                NCCLStatistics.shared.registrationFailures.add(1, ordering: .relaxed)
                comm.context.log(.info, "\(comm.label) socket \(index): registering \(buffers.count) buffers failed (\(error)); sending without")
            }
        }
    }

    private func send(_ job: Job, _ state: inout LaneState, timeout: Duration) throws(URingError) {
        let header = UnsafeMutableRawBufferPointer(start: state.bounce, count: NCCLWireFrame.size)
        switch job {
        case let .frame(frame):
            frame.encode(into: state.bounce)
            try state.sender.sendPlain(UnsafeRawBufferPointer(header), timeout: timeout)
        case let .piece(p):
            let r = p.request
            let payload = UnsafeRawBufferPointer(start: r.data.map { UnsafeRawPointer($0) + p.offset }, count: p.length)
            let crc = comm.crc ? cnm_crc32c(0, payload.baseAddress, p.length) : nil
            let frame = NCCLWireFrame.data(sequence: r.sequence, total: UInt64(p.total), offset: UInt64(p.offset),
                                           length: p.length, crc: crc)
            frame.encode(into: state.bounce)
            if p.length < state.config.zeroCopyMin {
                if p.length > 0 { (state.bounce + NCCLWireFrame.size).copyMemory(from: payload.baseAddress!, byteCount: p.length) }
                try state.sender.sendPlain(UnsafeRawBufferPointer(start: state.bounce, count: NCCLWireFrame.size + p.length),
                                           timeout: timeout)
                pieceSent(r)
                return
            }
            try state.sender.sendPlain(UnsafeRawBufferPointer(header), timeout: timeout)
            decideZeroCopy(&state)
            guard state.zeroCopy else {
                try state.sender.sendPlain(payload, timeout: timeout)
                pieceSent(r)
                return
            }
            let tag = state.nextTag
            state.nextTag = state.nextTag == UInt32.max ? 1 : state.nextTag + 1
            try state.sender.send(payload, tag: tag, timeout: timeout)
            if state.sender.inFlight(tag: tag) > 0 {
                state.waiting.append((tag, r))
            } else {
                pieceSent(r)
            }
        }
    }

    /// With `auto`: after 32 notifications, stop SEND_ZC on this socket if the kernel
    /// copied every one of them.
    private func decideZeroCopy(_ state: inout LaneState) {
        guard state.config.zeroCopy == .auto, !state.autoDecided else { return }
        let s = state.sender.statistics
        guard s.usageReported, s.notifications >= 32 else { return }
        state.autoDecided = true
        if s.copiedByKernel == s.notifications {
            state.zeroCopy = false
            NCCLStatistics.shared.zeroCopyFallbacks.add(1, ordering: .relaxed)
            comm.context.log(.info, "\(comm.label) socket \(index): the kernel copied all of the first \(s.notifications) zero-copy sends (a loopback or copying route); plain sends from now on (NETMEM_NCCL_ZEROCOPY=1 keeps SEND_ZC)")
        }
    }

    /// Finishes the waiting pieces whose notifications have come (in order).
    private func finishNotified(_ state: inout LaneState) {
        while let first = state.waiting.first, state.sender.inFlight(tag: first.tag) == 0 {
            state.waiting.removeFirst()
            pieceSent(first.request)
        }
    }

    private func pieceSent(_ r: NCCLRequest) {
        if r.piecesLeft.subtract(1, ordering: .acquiringAndReleasing).oldValue == 1 {
            r.complete(size: r.capacity)
        }
    }

    private func laneError(_ error: URingError) -> NCCLError {
        switch error {
        case let .systemCall(_, e) where e == .brokenPipe || e == .connectionReset || e == .timedOut
            || e == .socketNotConnected || e == .connectionAbort:
            return NCCLError(.remote, "socket \(index): the receiver is gone (\(error))")
        case .timedOut:
            return NCCLError(.remote, "socket \(index): the receiver took nothing for \(comm.configuration.peerTimeoutSeconds) s (\(error))")
        default:
            return NCCLError(.system, "socket \(index): \(error)")
        }
    }

    /// Drops queued jobs after the lane stopped (their requests fail with the comm).
    private func drainFailed() {
        let left = queue.withLockChecked { q -> Int in
            let n = q.count
            q.removeAll()
            return n
        }
        if left > 0 && comm.error == nil {
            comm.fail(NCCLError(.remote, "socket \(index) closed with \(left) pieces unsent"))
        }
    }
}
