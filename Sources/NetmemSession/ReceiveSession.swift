import Glibc
import Netmem
import NetmemDevice
import NetmemFraming
import NetmemGPU
import NetmemURing
import Synchronization
import SystemPackage

/// A receive session: everything a Netmem receiver is made of, from one configuration.
/// It owns the memory (provider, page pool, region and binding), the io_uring
/// `StreamReceiver`, a frame parser per connection, the RX thread and the order things
/// are torn down in. Received data lands in the session's region; each frame (raw mode:
/// each run of bytes) reaches the application as a `ReceivedFrame` whose `Message` owns
/// its tokens and gives them back when it goes away.
///
/// Two ways to consume it:
///
/// - Async: `start()`, then iterate `connections` and each connection's `frames`
///   (backpressure per connection; cancelling the task iterating `connections` stops the
///   session). `run()` starts, waits, and stops on task cancellation.
/// - Callbacks, for hot loops: `start(handler:)` calls the handler on the RX thread, or
///   `run(handler:)` runs the loop on the calling thread.
///
/// `stop()` (any thread) ends it: connections close, the pool is destroyed and the region
/// unbound; chunks of frames the application still holds come back when it lets them go.
/// Statistics can be read from any thread at any time.
public final class ReceiveSession: Sendable {
    /// What the session tells a callback handler, on the RX thread, in stream order.
    public enum Event: Sendable {
        case connected(ConnectionID)
        /// A frame (raw mode: a run of bytes). Keep it as long as its bytes are needed.
        case frame(ConnectionID, ReceivedFrame)
        /// A connection ended; every frame of it came before.
        case ended(ConnectionID, ConnectionSummary)
    }

    /// The configuration the session was made from.
    public let configuration: Configuration
    /// The page pool received data lands in (owned by the RX thread while it runs).
    public let pool: PagePool
    /// The region every delivered fragment names.
    public var region: DeviceMemoryRegion { regions.region }
    /// Region coordinates of the pool's chunks.
    public let regions: RegionMap
    /// The binding of a memfd region (or pinned GPU landing).
    public let binding: DevmemBinding?
    /// The GPU memory (`Memory.gpu`); make a consumer for frames with `gpu.makeConsumer()`.
    public let gpu: GPUReceiveMemory?
    /// The pool's provider.
    public let provider: any MemoryProvider
    /// The io_uring receive engine.
    public let receiver: StreamReceiver
    /// The token table every delivered fragment's token is issued from.
    public let tokens: TokenTable
    /// Runs tasks that prefer it on the RX thread, between batches of completions: the
    /// cheapest place for an async consumer that takes frames and lets them go (see
    /// `RXThreadExecutor`).
    public let executor: RXThreadExecutor
    /// Staging memory for incomplete frames under pressure (framed mode).
    let staging: RegionMemory?
    /// The address the session listens on (with the port the kernel picked for port 0).
    public let localAddress: SocketAddress?
    private let listener: FileDescriptor?
    let counters = Counters()
    private let control = Mutex(Control())
    private let incoming = AsyncFrameQueue<ReceiveConnection, ReceiveSessionError>(limit: .max)

    private enum Phase { case ready, running, ended }

    private struct Control: ~Copyable {
        var phase = Phase.ready
        var failure: ReceiveSessionError?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Makes the memory, the receiver and (with `listen`) the listening socket; nothing
    /// is read until the session starts.
    ///
    /// - Throws: `ReceiveSessionError` naming what could not be set up: a configuration
    ///   value, the memory, the region, the GPU, the receiver, or the listen address.
    public init(_ configuration: Configuration) throws(ReceiveSessionError) {
        try configuration.validate()
        let maxMessage: Int
        if case let .framed(maxPayload) = configuration.mode { maxMessage = maxPayload } else { maxMessage = configuration.chunkSize }
        let memory = try RegionMemory(kind: configuration.memory, chunkSize: configuration.chunkSize,
                                      chunkCount: configuration.chunkCount, segments: configuration.segments,
                                      maxMessage: maxMessage, name: "\(configuration.name) recv")
        if case .framed = configuration.mode, memory.regions.region.access != .mapped {
            throw .invalidConfiguration("framed receive reads headers where they land, and \(configuration.memory) memory is not readable by the CPU; use raw mode")
        }
        var receiverConfiguration = StreamReceiver.Configuration(bufferCount: configuration.bufferCount,
                                                                 incremental: configuration.incremental)
        receiverConfiguration.idleWait = configuration.idleWait
        if case .framed = configuration.mode {
            receiverConfiguration.tickInterval = .milliseconds(100)
            staging = try RegionMemory(kind: .host, chunkSize: 4096, chunkCount: configuration.stagingChunks,
                                       name: "\(configuration.name) staging")
        } else {
            staging = nil
        }
        let receiver: StreamReceiver
        do { receiver = try StreamReceiver(pool: memory.pool, configuration: receiverConfiguration) } catch {
            throw .receiver(error)
        }
        self.receiver = receiver
        executor = RXThreadExecutor(wake: { receiver.wake() })
        if let address = configuration.listen {
            let fd: FileDescriptor
            do { fd = try BlockingSocket.listen(on: address, backlog: configuration.backlog) } catch {
                throw .listen(address, error)
            }
            do { localAddress = try BlockingSocket.localAddress(of: fd) } catch {
                _ = try? fd.close()
                throw .listen(address, error)
            }
            listener = fd
        } else {
            listener = nil
            localAddress = nil
        }
        self.configuration = configuration
        pool = memory.pool
        regions = memory.regions
        binding = memory.binding
        gpu = memory.gpu
        provider = memory.provider
        tokens = TokenTable(name: "\(configuration.name) session")
    }

    deinit {
        if control.withLockChecked({ $0.phase == .ready }), let listener { _ = try? listener.close() }
    }

    /// Reads `socket` (a connected TCP socket); the session owns and closes it. Any
    /// thread, before or while the session runs.
    public func adopt(_ socket: FileDescriptor) { receiver.adopt(socket) }

    // MARK: Starting

    /// Starts the RX thread for the async API: connections arrive on `connections`.
    ///
    /// - Throws: `ReceiveSessionError.alreadyStarted` when the session ran before.
    public func start() throws(ReceiveSessionError) {
        try launch { [self] in
            var table: [ConnectionID: ReceiveConnection] = [:]
            self.loop({ event in
                switch event {
                case let .connected(id):
                    let connection = ReceiveConnection(id: id, receiver: self.receiver, limit: self.configuration.maxQueuedFrames)
                    table[id] = connection
                    _ = self.incoming.push(connection)
                case let .frame(id, frame):
                    if table[id]?.queue.push(frame) == .high {
                        self.receiver.hold(id, reason: .consumer)
                        self.counters.holds.add(1, ordering: .relaxed)
                    }
                case let .ended(id, summary):
                    table.removeValue(forKey: id)?.ended(summary)
                }
            }, consumerBehind: { id in table[id]?.queue.isHigh ?? false })
        }
    }

    /// Starts the RX thread with a callback: `handler` gets every event on that thread.
    ///
    /// - Throws: `ReceiveSessionError.alreadyStarted` when the session ran before.
    public func start(handler: @escaping @Sendable (Event) -> Void) throws(ReceiveSessionError) {
        try launch { [self] in self.loop(handler) }
    }

    /// Runs the receive loop on the calling thread until `stop()` (from another thread or
    /// from `handler`), delivering every event to `handler`.
    ///
    /// - Throws: `ReceiveSessionError` when the session ran before, the ring failed, or
    ///   the listener failed.
    public func run(handler: (Event) -> Void) throws(ReceiveSessionError) {
        try control.withLockChecked { (c) throws(ReceiveSessionError) in
            guard c.phase == .ready else { throw .alreadyStarted }
            c.phase = .running
        }
        loop(handler)
        if let failure = control.withLockChecked({ $0.failure }) { throw failure }
    }

    /// Starts the session (async API), waits until it ends, and stops it when the calling
    /// task is cancelled.
    ///
    /// - Throws: `ReceiveSessionError` when the session could not start or ended with an
    ///   error.
    public func run() async throws(ReceiveSessionError) {
        if control.withLockChecked({ $0.phase == .ready }) { try start() }
        await withTaskCancellationHandler { await waitUntilEnded() } onCancel: { stop() }
        if let failure = control.withLockChecked({ $0.failure }) { throw failure }
    }

    private func launch(_ body: @escaping @Sendable () -> Void) throws(ReceiveSessionError) {
        try control.withLockChecked { (c) throws(ReceiveSessionError) in
            guard c.phase == .ready else { throw .alreadyStarted }
            c.phase = .running
        }
        // Detached: its end is signalled through `control`, and waiters may be async.
        startDetachedThread(body)
    }

    // MARK: Stopping and waiting

    /// Asks the session to end (any thread; returns at once).
    public func stop() { receiver.stop() }

    /// Whether the session was started and has not ended yet.
    public var isRunning: Bool { control.withLockChecked { $0.phase == .running } }

    /// Waits until the session ended.
    ///
    /// - Throws: the error the session ended with.
    public func wait() async throws(ReceiveSessionError) {
        await waitUntilEnded()
        if let failure = control.withLockChecked({ $0.failure }) { throw failure }
    }

    /// Waits on the calling thread until the session ended (for programs without an async
    /// context).
    ///
    /// - Throws: the error the session ended with.
    public func waitBlocking() throws(ReceiveSessionError) {
        var pause: UInt32 = 50
        while control.withLockChecked({ $0.phase == .running }) {
            usleep(pause)
            pause = min(pause * 2, 1000)
        }
        if let failure = control.withLockChecked({ $0.failure }) { throw failure }
    }

    private func waitUntilEnded() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ended = control.withLockChecked { s -> Bool in
                if s.phase == .ended { return true }
                s.waiters.append(c)
                return false
            }
            if ended { c.resume() }
        }
    }

    // MARK: Async API

    /// Accepted (and adopted) connections, as they come. The sequence ends when the
    /// session ends, and throws the error it ended with. Cancelling the task that
    /// iterates it stops the session.
    public var connections: Connections { Connections(session: self) }

    /// The session's connections as they come (see `connections`).
    public struct Connections: AsyncSequence, Sendable {
        /// `AsyncSequence` requirement.
        public typealias Element = ReceiveConnection
        /// `AsyncSequence` requirement.
        public typealias Failure = ReceiveSessionError
        let session: ReceiveSession

        /// `AsyncSequence` requirement.
        public func makeAsyncIterator() -> Iterator { Iterator(session: session) }

        /// Takes the session's connections in order. Cancelling the task that waits on it stops
        /// the session.
        public struct Iterator: AsyncIteratorProtocol {
            let session: ReceiveSession

            /// The next connection; nil once the session ended cleanly. Throws the
            /// `ReceiveSessionError` the session ended with otherwise.
            public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws(ReceiveSessionError) -> ReceiveConnection? {
                let s = session
                return try await s.incoming.next(onCancel: { s.stop() }, pressure: { _ in }).get()
            }

            /// `AsyncIteratorProtocol` requirement; calls `next(isolation:)`.
            public mutating func next() async throws(ReceiveSessionError) -> ReceiveConnection? {
                try await next(isolation: nil)
            }
        }
    }

    // MARK: The RX thread

    /// The RX loop and the shutdown after it, on the calling thread (the pool's owner).
    private func loop(_ deliver: (Event) -> Void, consumerBehind: (ConnectionID) -> Bool = { _ in false }) {
        var router = Router(session: self)
        var failure: ReceiveSessionError?
        if let listener { receiver.listen(on: listener) }
        staging?.pool.adoptOwnership()
        executor.beginServing()
        do {
            try receiver.run(afterBatch: { executor.runJobs() }) { event in
                router.handle(event, deliver, consumerBehind: consumerBehind)
            }
        } catch {
            failure = .receiver(error)
        }
        executor.endServing()
        if failure == nil { failure = router.listenerFailure }
        router.abortAll(deliver)
        // The kernel holds no buffer now. Destroying the pool sends its cached chunks
        // back to the provider; the region is unbound after it. Chunks of frames the
        // application still holds come back when it lets them go.
        pool.destroy()
        staging?.pool.destroy()
        binding?.unbind()
        if let listener { _ = try? listener.close() }
        let waiters = control.withLockChecked { c -> [CheckedContinuation<Void, Never>] in
            c.phase = .ended
            c.failure = failure
            defer { c.waiters.removeAll() }
            return c.waiters
        }
        incoming.finish(failure.map { .failure($0) } ?? .success(()))
        for w in waiters { w.resume() }
    }

    // MARK: State

    /// Buffers still out: chunks handed out by the pool, tokens out with frames.
    public var inFlight: (pool: Int, tokens: Int) { (pool.inFlight, tokens.heldCount) }

    /// How the teardown stands: the pool (finished once every chunk came back) and the
    /// binding (freed once unbound and every chunk came back).
    public var shutdownStatus: (pool: PagePool.ShutdownStatus, binding: BindingReport?) {
        (pool.pollShutdown(), binding?.report)
    }
}
