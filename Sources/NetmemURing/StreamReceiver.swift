import CNetmemLinux
import Glibc
import Netmem
import Synchronization
import SystemPackage

/// The io_uring TCP receive engine: one thread (the one that calls `run`) owns the ring,
/// the provided-buffer ring and the pool. Connections are accepted from listeners or
/// adopted; each is read with a multishot receive that picks buffers from the
/// provided-buffer ring, and every completion becomes a `ReceivedSegment` handed to the
/// handler. Segments come back with `release(_:)` from any thread; a chunk goes back into
/// the kernel's ring only when every piece of it has been released.
///
/// Backpressure: when the application holds every buffer, the kernel ends a receive with
/// ENOBUFS; the receiver stops reading that connection (counted in
/// `Statistics.backpressureEvents`) and re-arms it once buffers come back. Data waits in
/// the socket (TCP flow control), so nothing is dropped and memory stays bounded by the
/// ring's buffers.
public final class StreamReceiver: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Submission queue entries of the ring.
        public var ringEntries: UInt32 = 256
        /// Buffers in the provided-buffer ring (the pool must be able to hand out this
        /// many chunks).
        public var bufferCount: Int = 64
        /// Buffer group id.
        public var bufferGroup: UInt16 = 1
        /// Incremental buffer consumption: nil uses it when the kernel has it and chunks
        /// are at least 64 KiB; true requires it; false never uses it.
        public var incremental: Bool? = nil
        /// Receive bundles (`IORING_RECVSEND_BUNDLE`) when the kernel has them; not
        /// combined with incremental mode.
        public var bundle: Bool = false
        /// Buffers that must be back in the ring before paused connections resume; nil
        /// picks a quarter of `bufferCount` (at least 1).
        public var resumeThreshold: Int? = nil
        /// Longest wait in the kernel when nothing happens (the stop flag and returns are
        /// looked at this often).
        public var idleWait: Duration = .milliseconds(10)

        public init(bufferCount: Int = 64, incremental: Bool? = nil, bundle: Bool = false) {
            self.bufferCount = bufferCount
            self.incremental = incremental
            self.bundle = bundle
        }
    }

    /// Counters, readable from any thread while the receiver runs.
    public struct Statistics: Sendable, Equatable, CustomStringConvertible {
        public var bytesReceived = 0
        public var completions = 0
        public var segmentsDelivered = 0
        public var segmentsReleased = 0
        /// Multishot receives re-armed after the kernel ended them with data pending.
        public var rearms = 0
        /// Times a receive ran out of buffers (ENOBUFS) and its connection paused.
        public var backpressureEvents = 0
        /// Paused connections that resumed when buffers came back.
        public var resumes = 0
        public var buffersInRing = 0
        /// Buffers out of the ring waiting for the application to release pieces.
        public var buffersHeldByApplication = 0
        public var connectionsAccepted = 0
        public var connectionsClosed = 0
        public var incremental = false
        public var bundle = false

        public var fields: [(String, Int)] {
            [("bytes", bytesReceived), ("completions", completions), ("segments", segmentsDelivered),
             ("segments_released", segmentsReleased), ("rearms", rearms), ("enobufs", backpressureEvents),
             ("resumes", resumes), ("buffers_in_ring", buffersInRing), ("buffers_held_by_app", buffersHeldByApplication),
             ("connections_accepted", connectionsAccepted), ("connections_closed", connectionsClosed)]
        }

        public var description: String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
    }

    public let configuration: Configuration
    public let pool: PagePool

    // Shared with other threads.
    private let stopRequested = Atomic<Bool>(false)
    private let hasRun = Atomic<Bool>(false)
    private let pending = Mutex<[Pending]>([])
    private let counters = Counters()
    /// Per bid: references (1 while the kernel uses it + 1 per unreleased segment).
    private let refcounts: UnsafeMutablePointer<Atomic<UInt32>>
    /// Buffer ids whose last reference was dropped, on their way back to the RX thread.
    private let returns: RecycleRing
    /// Set when `run` has ended: late releases then go straight to the pool. Guarded so a
    /// release cannot slip into the queue after its last drain.
    private let finished = Mutex<Bool>(false)
    /// bid → chunk, kept for releases that arrive after `run` ended.
    private let chunkOfBid: UnsafeMutablePointer<Atomic<UInt64>>

    private enum Pending {
        case adopt(FileDescriptor)
        case listen(FileDescriptor)
    }

    public init(pool: PagePool, configuration: Configuration = Configuration()) throws(URingError) {
        guard configuration.bufferCount > 0, configuration.bufferCount <= 32768 else {
            throw .invalidConfiguration("buffer count \(configuration.bufferCount): must be 1 to 32768")
        }
        guard configuration.bufferCount <= pool.configuration.poolSize else {
            throw .invalidConfiguration("buffer count \(configuration.bufferCount) exceeds the pool size \(pool.configuration.poolSize)")
        }
        self.pool = pool
        self.configuration = configuration
        refcounts = .allocate(capacity: configuration.bufferCount)
        chunkOfBid = .allocate(capacity: configuration.bufferCount)
        for i in 0..<configuration.bufferCount {
            (refcounts + i).initialize(to: Atomic(0))
            (chunkOfBid + i).initialize(to: Atomic(0))
        }
        returns = RecycleRing(capacity: configuration.bufferCount)
    }

    deinit {
        refcounts.deinitialize(count: configuration.bufferCount)
        refcounts.deallocate()
        chunkOfBid.deinitialize(count: configuration.bufferCount)
        chunkOfBid.deallocate()
    }

    // MARK: Any thread

    /// Reads `socket` (a connected TCP socket) once the receiver runs; the receiver owns
    /// and closes it. Any thread.
    public func adopt(_ socket: FileDescriptor) {
        pending.withLockChecked { $0.append(.adopt(socket)) }
    }

    /// Accepts connections from `listener` (a listening socket the caller keeps and
    /// closes after `run` returns). Any thread.
    public func listen(on listener: FileDescriptor) {
        pending.withLockChecked { $0.append(.listen(listener)) }
    }

    /// Asks `run` to end (connections close with `.closedLocally`). Any thread.
    public func stop() { stopRequested.store(true, ordering: .releasing) }

    /// Gives a segment back (any thread, exactly once per segment). When it was the last
    /// piece of its chunk, the chunk goes back to the ring (through a lock-free queue to
    /// the RX thread) or, after `run` ended, to the pool.
    public func release(_ segment: ReceivedSegment) {
        counters.segmentsReleased.add(1, ordering: .relaxed)
        dropReference(bid: segment.bid)
    }

    /// The counters now.
    public var statistics: Statistics { counters.snapshot() }

    // MARK: References

    private func dropReference(bid: UInt16) {
        let old = refcounts[Int(bid)].subtract(1, ordering: .acquiringAndReleasing).oldValue
        precondition(old > 0, "buffer \(bid) released more often than it was handed out (double release of a segment)")
        if old == 1 { bufferIsFree(bid) }
    }

    private func bufferIsFree(_ bid: UInt16) {
        finished.withLockChecked { done in
            if done {
                let raw = chunkOfBid[Int(bid)].exchange(0, ordering: .acquiringAndReleasing)
                precondition(raw != 0, "buffer \(bid) freed twice after the receiver stopped")
                pool.recycle(NetmemRef(rawValue: raw))
                counters.buffersHeld.subtract(1, ordering: .relaxed)
            } else {
                let pushed = returns.push(UInt64(bid))
                precondition(pushed, "return queue overflow (buffer \(bid)): more returns than buffers")
            }
        }
    }

    // MARK: The RX loop

    /// Runs the receive loop on the calling thread (which becomes the pool's owner) until
    /// `stop()` is called, `deadline` passes, or — with `untilIdle` — no connection and
    /// no listener is left. Delivers events to `handler` on this thread. On return every
    /// connection is closed and every buffer not held by the application is back in the
    /// pool; buffers the application still holds go to the pool when released.
    public func run(untilIdle: Bool = false, deadline: ContinuousClock.Instant? = nil,
                    handler: (ReceiveEvent) -> Void) throws(URingError) {
        precondition(!hasRun.exchange(true, ordering: .acquiringAndReleasing),
                     "StreamReceiver.run called twice: a receiver runs once (make a new one)")
        pool.adoptOwnership()
        let ring = try IOURing(IOURing.Options(entries: configuration.ringEntries,
                                               completionEntries: configuration.ringEntries * 4))
        let features = ring.probeFeatures()
        guard features.providedBufferRings else {
            throw .unsupported("provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19+)")
        }
        let chunkSize = pool.configuration.chunkSize
        let incremental: Bool
        switch configuration.incremental {
        case .some(true):
            guard features.incrementalBuffers else {
                throw .unsupported("incremental provided-buffer rings (IOU_PBUF_RING_INC, Linux 6.12+)")
            }
            incremental = true
        case .some(false): incremental = false
        case .none: incremental = features.incrementalBuffers && chunkSize >= 64 << 10
        }
        let bundle = configuration.bundle && features.bundles && !incremental
        counters.incremental.store(incremental ? 1 : 0, ordering: .relaxed)
        counters.bundle.store(bundle ? 1 : 0, ordering: .relaxed)
        let buffers = try ProvidedBufferRing(ring: ring, group: configuration.bufferGroup,
                                             bufferCount: configuration.bufferCount,
                                             bufferLength: chunkSize, incremental: incremental)
        var engine = Engine(ring: ring, buffers: buffers, receiver: self, incremental: incremental, bundle: bundle)
        engine.fillRing()
        defer {
            try? engine.closeAll(handler)
            engine.teardown()
        }
        guard engine.buffers.buffersInRing > 0 else {
            throw .outOfBuffers("pool '\(pool.configuration.name)' gave no chunks for the provided-buffer ring")
        }
        let resume = configuration.resumeThreshold ?? max(1, configuration.bufferCount / 4)
        while !stopRequested.load(ordering: .acquiring) {
            if let deadline, ContinuousClock.now >= deadline { break }
            takePending(&engine, handler)
            engine.collectReturns()
            try engine.refill(resumeThreshold: resume)
            if untilIdle && engine.isIdle { break }
            let wait = engine.hasPaused ? Duration.milliseconds(1) : configuration.idleWait
            try engine.ring.submitAndWait(minimumCompletions: 1, timeout: wait)
            try engine.reapAll(handler)
            engine.flushPendingEnds(handler)
            engine.publishStatistics()
        }
    }

    private func takePending(_ engine: inout Engine, _ handler: (ReceiveEvent) -> Void) {
        let items = pending.withLockChecked { p -> [Pending] in
            let items = p
            p.removeAll()
            return items
        }
        for item in items {
            switch item {
            case let .adopt(fd): engine.addConnection(fd, handler)
            case let .listen(fd): engine.addListener(fd)
            }
        }
        let closes = closeRequests.withLockChecked { c -> [ConnectionID] in
            let items = c
            c.removeAll()
            return items
        }
        for id in closes { engine.requestClose(id) }
    }

    /// Closes a connection (any thread; typically from the handler after a framing
    /// error): its receive is cancelled, data still arriving for it is given back
    /// undelivered, and `.closed(id, .closedLocally)` follows.
    public func close(_ connection: ConnectionID) {
        closeRequests.withLockChecked { $0.append(connection) }
    }

    // MARK: The engine (RX thread state)

    /// The RX thread's state: everything here is touched by that thread only.
    private struct Engine: ~Copyable {
        var ring: IOURing
        var buffers: ProvidedBufferRing
        unowned let receiver: StreamReceiver
        let incremental: Bool
        let bundle: Bool
        var connections: [UInt32: Connection] = [:]
        var nextSlot: UInt32 = 1
        var nextConnection: UInt64 = 1
        var listeners: [UInt32: FileDescriptor] = [:]
        var paused: [UInt32] = []
        let batch: UnsafeMutableBufferPointer<Completion>
        var rearm: [UInt32] = []

        struct Connection {
            let id: ConnectionID
            let fd: FileDescriptor
            var offset: UInt64 = 0
            var armed = false
            var paused = false
            var closing = false
        }

        static let kindRecv: UInt64 = 1 << 56
        static let kindAccept: UInt64 = 2 << 56
        static let kindCancel: UInt64 = 3 << 56
        static let kindMask: UInt64 = 0xFF << 56

        init(ring: consuming IOURing, buffers: consuming ProvidedBufferRing, receiver: StreamReceiver,
             incremental: Bool, bundle: Bool) {
            self.ring = ring
            self.buffers = buffers
            self.receiver = receiver
            self.incremental = incremental
            self.bundle = bundle
            batch = .allocate(capacity: 128)
            batch.initialize(repeating: Completion(userData: 0, result: 0, flags: 0))
        }

        deinit {
            batch.deallocate()
        }

        var isIdle: Bool { connections.isEmpty && listeners.isEmpty }
        var hasPaused: Bool { !paused.isEmpty }

        /// Takes chunks from the pool for every free bid and publishes them.
        mutating func fillRing() {
            while buffers.hasFreeBid, let ref = receiver.pool.allocate() {
                guard let base = ref.area.address(of: ref) else {
                    receiver.pool.recycle(ref)
                    preconditionFailure("pool '\(receiver.pool.configuration.name)' hands out chunks the CPU cannot address; io_uring receives need host memory")
                }
                let bid = buffers.provide(ref, address: base)!
                receiver.refcounts[Int(bid)].store(1, ordering: .relaxed)
                receiver.chunkOfBid[Int(bid)].store(ref.rawValue, ordering: .relaxed)
            }
            buffers.publish()
        }

        /// Frees bids whose every piece came back; their chunks return to the pool.
        mutating func collectReturns() {
            var any = false
            while let bid = receiver.returns.pop() {
                reclaim(UInt16(truncatingIfNeeded: bid))
                any = true
            }
            if any && !paused.isEmpty { lastReturn = .now }
        }

        /// When buffers last came back while a connection was paused.
        var lastReturn = ContinuousClock.now

        mutating func reclaim(_ bid: UInt16) {
            let ref = buffers.reclaim(bid)
            receiver.chunkOfBid[Int(bid)].store(0, ordering: .relaxed)
            receiver.pool.recycle(ref)
        }

        /// Refills the ring and resumes paused connections once enough buffers are in it:
        /// `resumeThreshold` of them, or any at all once returns have stopped coming for a
        /// moment (an application that keeps most buffers must still get the data that
        /// lets it finish with them).
        mutating func refill(resumeThreshold: Int) throws(URingError) {
            if buffers.hasFreeBid { fillRing() }
            guard !paused.isEmpty, buffers.buffersInRing > 0 else { return }
            if buffers.buffersInRing < min(resumeThreshold, buffers.bufferCount)
                && ContinuousClock.now - lastReturn < .milliseconds(2) {
                return
            }
            let slots = paused
            paused.removeAll()
            for slot in slots {
                guard var c = connections[slot], c.paused, !c.closing else { continue }
                c.paused = false
                connections[slot] = c
                try arm(slot)
                receiver.counters.resumes.add(1, ordering: .relaxed)
            }
        }

        mutating func addConnection(_ fd: FileDescriptor, _ handler: (ReceiveEvent) -> Void) {
            let slot = nextSlot
            nextSlot &+= 1
            let id = ConnectionID(rawValue: nextConnection)
            nextConnection += 1
            connections[slot] = Connection(id: id, fd: fd)
            receiver.counters.connectionsAccepted.add(1, ordering: .relaxed)
            handler(.connected(id))
            do { try arm(slot) } catch {
                end(slot, .failed(.ioError), handler)
            }
        }

        mutating func addListener(_ fd: FileDescriptor) {
            let slot = nextSlot
            nextSlot &+= 1
            listeners[slot] = fd
            try? ring.prepareAccept(listener: fd, multishot: true, userData: Self.kindAccept | UInt64(slot))
        }

        mutating func arm(_ slot: UInt32) throws(URingError) {
            guard var c = connections[slot] else { return }
            try ring.prepareRecvMultishot(socket: c.fd, group: buffers.group, bundle: bundle,
                                          userData: Self.kindRecv | UInt64(slot))
            c.armed = true
            connections[slot] = c
        }

        mutating func reapAll(_ handler: (ReceiveEvent) -> Void) throws(URingError) {
            var rounds = 0
            while rounds < 16 {
                let n = ring.reap(into: batch)
                if n == 0 { break }
                receiver.counters.completions.add(n, ordering: .relaxed)
                for i in 0..<n {
                    let c = batch[i]
                    switch c.userData & Self.kindMask {
                    case Self.kindRecv:
                        if handleRecv(c, handler) { rearm.append(UInt32(truncatingIfNeeded: c.userData)) }
                    case Self.kindAccept:
                        handleAccept(c, handler)
                    default:
                        break
                    }
                }
                for slot in rearm {
                    try arm(slot)
                    receiver.counters.rearms.add(1, ordering: .relaxed)
                }
                rearm.removeAll(keepingCapacity: true)
                collectReturns()
                if buffers.hasFreeBid { fillRing() }
                rounds += 1
            }
        }

        mutating func handleAccept(_ c: Completion, _ handler: (ReceiveEvent) -> Void) {
            let slot = UInt32(truncatingIfNeeded: c.userData)
            guard let listener = listeners[slot] else {
                if c.result >= 0 { Glibc.close(c.result) }
                return
            }
            if c.result >= 0 {
                addConnection(FileDescriptor(rawValue: c.result), handler)
            } else if let e = c.error {
                switch e {
                case .canceled:
                    listeners[slot] = nil
                    return
                case .resourceTemporarilyUnavailable, .interrupted, .connectionAbort,
                     .noMemory, .noBufferSpace, .tooManyOpenFiles, .tooManyOpenFilesInSystem:
                    break  // transient: accept again
                default:
                    listeners[slot] = nil
                    handler(.listenerFailed(e))
                    return
                }
            }
            if !c.hasMore {
                try? ring.prepareAccept(listener: listener, multishot: true, userData: Self.kindAccept | UInt64(slot))
            }
        }

        /// Handles one receive completion; returns true when the multishot must be re-armed.
        mutating func handleRecv(_ c: Completion, _ handler: (ReceiveEvent) -> Void) -> Bool {
            let slot = UInt32(truncatingIfNeeded: c.userData)
            if !c.hasMore, var conn = connections[slot] {
                conn.armed = false
                connections[slot] = conn
            }
            if c.result > 0 {
                guard let bid = c.bufferID else {
                    preconditionFailure("receive completion of \(c.result) bytes without a buffer id: \(c)")
                }
                deliver(slot: slot, bid: bid, length: Int(c.result), bufferMore: c.bufferHasMore, handler)
                if c.hasMore { return false }
                guard let conn = connections[slot] else { return false }
                if conn.closing {
                    end(slot, .closedLocally, handler)
                    return false
                }
                return true  // ended with data (e.g. a bundle, or CQ pressure): re-arm
            }
            guard var conn = connections[slot] else { return false }
            if c.result == 0 {
                end(slot, conn.closing ? .closedLocally : .endOfStream, handler)
                return false
            }
            let e = Errno(rawValue: -c.result)
            switch e {
            case .noBufferSpace where !conn.closing:
                conn.paused = true
                connections[slot] = conn
                paused.append(slot)
                receiver.counters.backpressureEvents.add(1, ordering: .relaxed)
            case .connectionReset:
                end(slot, conn.closing ? .closedLocally : .reset, handler)
            case _ where conn.closing, .canceled:
                end(slot, .closedLocally, handler)
            default:
                end(slot, .failed(e), handler)
            }
            return false
        }

        mutating func deliver(slot: UInt32, bid: UInt16, length: Int, bufferMore: Bool,
                              _ handler: (ReceiveEvent) -> Void) {
            receiver.counters.bytesReceived.add(length, ordering: .relaxed)
            if bundle {
                var left = length
                var i = 0
                let size = buffers.bufferLength
                while left > 0 {
                    let b = buffers.bid(following: bid, by: i)
                    let n = min(left, size)
                    deliverPiece(slot: slot, bid: b, length: n, kernelDone: true, handler)
                    left -= n
                    i += 1
                }
            } else {
                deliverPiece(slot: slot, bid: bid, length: length, kernelDone: !(incremental && bufferMore), handler)
            }
        }

        mutating func deliverPiece(slot: UInt32, bid: UInt16, length: Int, kernelDone: Bool,
                                   _ handler: (ReceiveEvent) -> Void) {
            let offset = buffers.consume(bid: bid, length: length)
            if var conn = connections[slot], !conn.closing {
                let ref = buffers.chunk(bid)
                let address = UInt(bitPattern: buffers.address(bid)) + UInt(offset)
                receiver.refcounts[Int(bid)].add(1, ordering: .relaxed)
                let seg = ReceivedSegment(connection: conn.id,
                                          fragment: NetmemFragment(ref: ref, offset: UInt32(offset), length: UInt32(length)),
                                          streamOffset: conn.offset, address: address, bid: bid)
                conn.offset += UInt64(length)
                connections[slot] = conn
                receiver.counters.segmentsDelivered.add(1, ordering: .relaxed)
                handler(.data(seg))
            }
            if kernelDone { dropKernelReference(bid) }
        }

        mutating func dropKernelReference(_ bid: UInt16) {
            buffers.kernelFinished(bid: bid)
            let old = receiver.refcounts[Int(bid)].subtract(1, ordering: .acquiringAndReleasing).oldValue
            precondition(old > 0, "buffer \(bid): kernel reference dropped twice")
            if old == 1 { reclaim(bid) }
        }

        /// Asks a connection to close: its receive is cancelled; the end is reported when
        /// the kernel confirms.
        mutating func requestClose(_ id: ConnectionID) {
            guard let slot = connections.first(where: { $0.value.id == id })?.key else { return }
            requestClose(slot: slot)
        }

        mutating func requestClose(slot: UInt32) {
            guard var c = connections[slot], !c.closing else { return }
            c.closing = true
            connections[slot] = c
            if c.armed {
                try? ring.prepareCancel(targetUserData: Self.kindRecv | UInt64(slot), userData: Self.kindCancel | UInt64(slot))
            } else if c.paused {
                paused.removeAll { $0 == slot }
                pendingEnds.append(slot)
            }
        }

        /// Closed connections whose end is reported at the next reap (not armed, so no
        /// completion will come).
        var pendingEnds: [UInt32] = []

        mutating func flushPendingEnds(_ handler: (ReceiveEvent) -> Void) {
            guard !pendingEnds.isEmpty else { return }
            for slot in pendingEnds { end(slot, .closedLocally, handler) }
            pendingEnds.removeAll()
        }

        mutating func end(_ slot: UInt32, _ why: ConnectionEnd, _ handler: (ReceiveEvent) -> Void) {
            guard let c = connections.removeValue(forKey: slot) else { return }
            if c.armed {
                try? ring.prepareCancel(targetUserData: Self.kindRecv | UInt64(slot), userData: Self.kindCancel | UInt64(slot))
            }
            _ = try? c.fd.close()
            receiver.counters.connectionsClosed.add(1, ordering: .relaxed)
            handler(.closed(c.id, why))
        }

        /// Closes every connection and listener and waits (bounded) for the kernel to end
        /// their requests.
        mutating func closeAll(_ handler: (ReceiveEvent) -> Void) throws(URingError) {
            for slot in listeners.keys {
                try? ring.prepareCancel(targetUserData: Self.kindAccept | UInt64(slot), userData: Self.kindCancel)
            }
            listeners.removeAll()
            for slot in Array(connections.keys) {
                if connections[slot]!.armed { requestClose(slot: slot) } else { end(slot, .closedLocally, handler) }
            }
            let deadline = ContinuousClock.now + .seconds(2)
            while !connections.isEmpty && ContinuousClock.now < deadline {
                try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(20))
                try reapAll(handler)
                flushPendingEnds(handler)
            }
            for slot in Array(connections.keys) {
                connections[slot]!.armed = false
                end(slot, .closedLocally, handler)
            }
            // Let the cancellations finish so no receive still points into our buffers.
            let drain = ContinuousClock.now + .milliseconds(200)
            while ContinuousClock.now < drain {
                try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(10))
                if ring.readyCompletions == 0 { break }
                try reapAll(handler)
            }
            publishStatistics()
        }

        /// Gives every buffer the kernel still holds back to the pool; buffers the
        /// application holds go to the pool when it releases them.
        mutating func teardown() {
            buffers.unregister()
            let r = receiver
            var popped: [UInt16] = []
            r.finished.withLockChecked { done in
                done = true
                while let bid = r.returns.pop() { popped.append(UInt16(truncatingIfNeeded: bid)) }
            }
            for bid in popped { reclaim(bid) }
            for i in 0..<buffers.bufferCount {
                let bid = UInt16(i)
                guard r.chunkOfBid[i].load(ordering: .relaxed) != 0, buffers.isInKernel(bid) else { continue }
                buffers.kernelFinished(bid: bid)
                let old = r.refcounts[i].subtract(1, ordering: .acquiringAndReleasing).oldValue
                if old == 1 { reclaim(bid) }
            }
            publishStatistics()
        }

        func publishStatistics() {
            receiver.counters.buffersInRing.store(buffers.buffersInRing, ordering: .relaxed)
            receiver.counters.buffersHeld.store(buffers.buffersOut - buffers.buffersInRing, ordering: .relaxed)
        }
    }

    private let closeRequests = Mutex<[ConnectionID]>([])
}

/// The receiver's counters (atomics, written by the RX thread, read anywhere).
final class Counters: Sendable {
    let bytesReceived = Atomic<Int>(0)
    let completions = Atomic<Int>(0)
    let segmentsDelivered = Atomic<Int>(0)
    let segmentsReleased = Atomic<Int>(0)
    let rearms = Atomic<Int>(0)
    let backpressureEvents = Atomic<Int>(0)
    let resumes = Atomic<Int>(0)
    let buffersInRing = Atomic<Int>(0)
    let buffersHeld = Atomic<Int>(0)
    let connectionsAccepted = Atomic<Int>(0)
    let connectionsClosed = Atomic<Int>(0)
    let incremental = Atomic<Int>(0)
    let bundle = Atomic<Int>(0)

    func snapshot() -> StreamReceiver.Statistics {
        var s = StreamReceiver.Statistics()
        s.bytesReceived = bytesReceived.load(ordering: .relaxed)
        s.completions = completions.load(ordering: .relaxed)
        s.segmentsDelivered = segmentsDelivered.load(ordering: .relaxed)
        s.segmentsReleased = segmentsReleased.load(ordering: .relaxed)
        s.rearms = rearms.load(ordering: .relaxed)
        s.backpressureEvents = backpressureEvents.load(ordering: .relaxed)
        s.resumes = resumes.load(ordering: .relaxed)
        s.buffersInRing = buffersInRing.load(ordering: .relaxed)
        s.buffersHeldByApplication = buffersHeld.load(ordering: .relaxed)
        s.connectionsAccepted = connectionsAccepted.load(ordering: .relaxed)
        s.connectionsClosed = connectionsClosed.load(ordering: .relaxed)
        s.incremental = incremental.load(ordering: .relaxed) != 0
        s.bundle = bundle.load(ordering: .relaxed) != 0
        return s
    }
}
