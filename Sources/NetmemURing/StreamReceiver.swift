import CNetmemLinux
import Glibc
import Netmem
import Synchronization
import SystemPackage

/// The io_uring TCP receive engine: one thread (the one that calls `run`) owns the ring,
/// the provided-buffer ring and the pool. Connections are accepted from listeners or
/// adopted; each is read with a multishot receive that picks buffers from the
/// provided-buffer ring, and every completion becomes a `ReceivedSegment` handed to the
/// handler. A segment holds a reference on its pool chunk and drops it when it goes away
/// (any thread); a chunk recycles through the pool once every segment in it is gone, and
/// the RX thread puts fresh chunks from the pool into the ring.
///
/// Backpressure: when the application holds every buffer, the kernel ends a receive with
/// ENOBUFS; the receiver stops reading that connection (counted in
/// `Statistics.backpressureEvents`) and re-arms it once buffers come back. A consumer may
/// also `hold` one connection (stop reading it) and `resume` it. Data waits in the socket
/// (TCP flow control), so nothing is dropped and memory stays bounded by the pool.
public final class StreamReceiver: Sendable {
    /// How the receiver sets up its ring and provided buffers. `init(pool:configuration:)`
    /// validates it against the pool.
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
        /// Longest wait in the kernel when nothing happens (the stop flag and deadlines
        /// are looked at this often; requests from other threads wake the loop at once).
        public var idleWait: Duration = .milliseconds(10)
        /// When set, the handler gets `.tick` about this often (for timeouts and
        /// housekeeping on the RX thread); nil sends none.
        public var tickInterval: Duration? = nil

        /// A configuration with the default ring, group, wait and resume settings.
        public init(bufferCount: Int = 64, incremental: Bool? = nil, bundle: Bool = false) {
            self.bufferCount = bufferCount
            self.incremental = incremental
            self.bundle = bundle
        }

        func validate(pool: PagePool) throws(URingError) {
            guard bufferCount > 0, bufferCount <= 32768 else {
                throw .invalidConfiguration("buffer count \(bufferCount): must be 1 to 32768")
            }
            guard bufferCount <= pool.configuration.poolSize else {
                throw .invalidConfiguration("buffer count \(bufferCount) exceeds the size \(pool.configuration.poolSize) of pool '\(pool.configuration.name)'")
            }
            guard ringEntries >= 8, ringEntries <= 32768, ringEntries & (ringEntries - 1) == 0 else {
                throw .invalidConfiguration("ring entries \(ringEntries): must be a power of two from 8 to 32768")
            }
            if let r = resumeThreshold, r < 1 || r > bufferCount {
                throw .invalidConfiguration("resume threshold \(r): must be 1 to the buffer count \(bufferCount)")
            }
            guard idleWait > .zero else { throw .invalidConfiguration("idle wait \(idleWait): must be positive") }
            if let t = tickInterval, t <= .zero { throw .invalidConfiguration("tick interval \(t): must be positive") }
            guard pool.configuration.provider.describe().readable else {
                throw .invalidConfiguration("pool '\(pool.configuration.name)' hands out chunks the CPU cannot address; io_uring receives land in host memory")
            }
        }
    }

    /// Why a connection is not being read. A connection is read again when no reason is
    /// left: each holder resumes its own.
    public struct HoldReasons: OptionSet, Sendable, Hashable {
        /// The reason bits.
        public let rawValue: UInt8
        /// Reasons from their bits.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The application asked (`hold(_:)` with no reason).
        public static let application = HoldReasons(rawValue: 1 << 0)
        /// The connection's consumer fell behind.
        public static let consumer = HoldReasons(rawValue: 1 << 1)
        /// Its next frame waits for its turn to hold receive memory.
        public static let admission = HoldReasons(rawValue: 1 << 2)
    }

    /// What other threads ask of the RX thread.
    enum Request {
        case adopt(FileDescriptor)
        case listen(FileDescriptor)
        case close(ConnectionID)
        case hold(ConnectionID, HoldReasons)
        case resume(ConnectionID, HoldReasons)
        case limitNextRead(ConnectionID, UInt32)
        /// The buffer's address and length (a plain address, so the request stays `Sendable`).
        case placeNext(ConnectionID, address: UInt, count: Int)
    }

    /// The configuration the receiver was made with.
    public let configuration: Configuration
    /// The pool the provided buffers come from. `run` adopts its ownership: only the RX thread
    /// allocates from it while the receiver runs.
    public let pool: PagePool

    private let stopRequested = Atomic<Bool>(false)
    private let hasRun = Atomic<Bool>(false)
    private let requests = Mutex<[Request]>([])
    /// When not 0, a new connection's first read takes at most this many bytes.
    let firstReadLimit = Atomic<Int>(0)
    private let hasRequests = Atomic<Bool>(false)
    /// The thread running `run` (its `cnm_thread_token`), 0 when none: its own requests
    /// need no wake-up.
    private let rxThread = Atomic<UInt>(0)
    let counters = Counters()
    /// An eventfd the RX thread keeps a read armed on: other threads write it to wake the
    /// loop when they post a request.
    let wakeFD: FileDescriptor

    /// A receiver over `pool` (whose chunks must be readable by the CPU).
    ///
    /// - Throws: `URingError.invalidConfiguration` when the configuration cannot work with
    ///   this pool; `.systemCall` when the wake-up eventfd cannot be made.
    public init(pool: PagePool, configuration: Configuration = Configuration()) throws(URingError) {
        try configuration.validate(pool: pool)
        let fd = cnm_eventfd()
        guard fd >= 0 else { throw .systemCall("eventfd", Errno(rawValue: errno)) }
        wakeFD = FileDescriptor(rawValue: fd)
        self.pool = pool
        self.configuration = configuration
    }

    deinit { _ = try? wakeFD.close() }

    // MARK: Any thread

    /// Reads `socket` (a connected TCP socket) once the receiver runs; the receiver owns
    /// and closes it. Any thread.
    public func adopt(_ socket: FileDescriptor) { post(.adopt(socket)) }

    /// Accepts connections from `listener` (a listening socket the caller keeps and
    /// closes after `run` returns). Any thread.
    public func listen(on listener: FileDescriptor) { post(.listen(listener)) }

    /// Closes a connection (any thread; typically after a framing error): its receive is
    /// cancelled, data still arriving for it is dropped, and `.closed(id,
    /// .closedLocally)` follows.
    public func close(_ connection: ConnectionID) { post(.close(connection)) }

    /// Stops reading a connection until `resume` with the same reason (any thread): its
    /// multishot receive is cancelled, so data waits in the socket. Segments already on
    /// their way are still delivered (at most what the ring holds).
    public func hold(_ connection: ConnectionID, reason: HoldReasons = .application) { post(.hold(connection, reason)) }

    /// Drops a reason to hold a connection (any thread); it is read again when no reason
    /// is left.
    public func resume(_ connection: ConnectionID, reason: HoldReasons = .application) { post(.resume(connection, reason)) }

    /// Makes the next read of a connection take at most `bytes` bytes (a one-shot
    /// receive), then reads go on as before (any thread). For a receiver that wants a
    /// frame's header before it lets the payload land.
    public func limitNextRead(_ connection: ConnectionID, to bytes: Int) {
        post(.limitNextRead(connection, UInt32(clamping: max(1, bytes))))
    }

    /// Makes the next `buffer.count` bytes of a connection's stream land in `buffer`
    /// instead of pool memory: receives straight into it (`MSG_WAITALL`), each reported by
    /// a `.placed` event, then reads go on as before. `buffer` must stay valid until all of
    /// it was reported or the connection closed (`run` returns only after the kernel let go
    /// of it).
    ///
    /// The position must be exact, so ask from the handler of the connection's event that
    /// ends just before those bytes, while the connection is read in one-shot reads (its
    /// first read limited with `limitFirstReads`, every later one by `limitNextRead` or a
    /// placement); asking while a multishot receive is armed traps. For a receiver that
    /// knows where a payload goes, as the NCCL plugin does for its posted receives.
    ///
    /// A peer that resets the connection while a placement waits may end it as
    /// `.endOfStream`: with `MSG_WAITALL` the kernel returns the bytes that came and drops
    /// the error. A receiver that expected more bytes treats such an end as the failure
    /// it is.
    package func placeNext(_ connection: ConnectionID, into buffer: UnsafeMutableRawBufferPointer) {
        post(.placeNext(connection, address: UInt(bitPattern: buffer.baseAddress), count: buffer.count))
    }

    /// Makes the first read of every connection accepted or adopted from now on take at
    /// most `bytes` bytes; nil lifts the limit (any thread).
    public func limitFirstReads(to bytes: Int?) {
        firstReadLimit.store(max(0, bytes ?? 0), ordering: .relaxed)
    }

    /// Asks `run` to end (connections close with `.closedLocally`). Any thread.
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        wake()
    }

    /// The counters now (any thread).
    public var statistics: Statistics { counters.snapshot(pool: pool) }

    private func post(_ request: Request) {
        requests.withLockChecked { $0.append(request) }
        hasRequests.store(true, ordering: .releasing)
        if rxThread.load(ordering: .relaxed) != cnm_thread_token() { wake() }
    }

    /// Makes the RX loop return from its wait in the kernel now (any thread), so it runs
    /// its `afterBatch` work and looks at its requests.
    public func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD.rawValue, &one, 8)
    }

    func takeRequests() -> [Request] {
        guard hasRequests.exchange(false, ordering: .acquiringAndReleasing) else { return [] }
        return requests.withLockChecked { r in
            let taken = r
            r.removeAll()
            return taken
        }
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

    // MARK: The RX loop

    /// Runs the receive loop on the calling thread (which becomes the pool's owner) until
    /// `stop()` is called, `deadline` passes, or — with `untilIdle` — no connection and
    /// no listener is left. Delivers events to `handler` on this thread. On return every
    /// connection is closed and every buffer the kernel held is back in the pool; chunks
    /// of segments the application still holds go back when those segments go away.
    ///
    /// `afterBatch` runs on this thread after each batch of completions was handled (and
    /// after each wait that ended without any); work another thread hands it calls `wake()`.
    ///
    /// - Throws: `URingError` when the ring cannot be set up or fails; connections
    ///   failing on their own end with `.closed(id, .failed(errno))` instead.
    public func run(untilIdle: Bool = false, deadline: ContinuousClock.Instant? = nil,
                    afterBatch: () -> Void = {},
                    handler: (consuming ReceiveEvent) -> Void) throws(URingError) {
        precondition(!hasRun.exchange(true, ordering: .acquiringAndReleasing),
                     "StreamReceiver.run called twice: a receiver runs once (make a new one)")
        pool.adoptOwnership()
        rxThread.store(cnm_thread_token(), ordering: .relaxed)
        defer { rxThread.store(0, ordering: .relaxed) }
        var engine = try Engine(receiver: self)
        defer { engine.shutDown(handler) }
        try engine.start()
        let resume = configuration.resumeThreshold ?? max(1, configuration.bufferCount / 4)
        var lastTick = ContinuousClock.now
        while !isStopRequested {
            let now = ContinuousClock.now
            if let deadline, now >= deadline { break }
            if let t = configuration.tickInterval, now - lastTick >= t {
                lastTick = now
                handler(.tick)
            }
            try engine.takeRequests(handler)
            try engine.refill(resumeThreshold: resume)
            if untilIdle && engine.isIdle { break }
            try engine.waitAndReap(handler)
            afterBatch()
        }
    }
}
