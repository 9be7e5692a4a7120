import Crypto
import Glibc
import Logging
import Netmem
import NetmemDevice
import NetmemGPU
import NetmemURing
import Synchronization
import SystemPackage

/// A Netmem receiver as the CLI runs it: a provider and page pool, an io_uring
/// `StreamReceiver`, a `StreamFramer` splitting headers from payload, and a consumer that
/// looks at every frame (checksums, digests) and returns its tokens at once.
final class CLIReceiveSession: @unchecked Sendable {
    struct Options: Sendable {
        var provider: CLIProviderKind = .host
        /// `--provider cuda[:N]`: GPU memory (then `provider` is ignored).
        var gpu: GPUProviderSpec? = nil
        var gpuLanding: CLIGPULanding = .pinned
        var chunkSize = 64 << 10
        var bufferCount = 64
        var framed = false
        var maxPayload = 1 << 20
        /// SHA-256 of each connection's bytes (raw) or payloads (framed).
        var sha256 = false
        /// Check that each connection's frame sequence numbers count up by one.
        var checkSequence = true
        /// Keep a SHA-256 of each connection's per-frame CRC-32C values (the demo's
        /// end-to-end check against the sender's).
        var digestFrameCRCs = false
        /// Stop after this many connections ended (0: never).
        var stopAfterConnections = 0
        /// Log each connection's end.
        var logConnections = true
    }

    /// What one ended connection looked like.
    struct ConnectionReport: Sendable {
        var id: ConnectionID
        var summary: StreamFramer.ConnectionSummary
        var sha256: String?
        var frameCRCDigest: String?
        var sequenceErrors: Int
    }

    let options: Options
    let provider: any MemoryProvider
    let area: NetmemArea
    let pool: PagePool
    /// With `--provider memfd`: the memfd region bound (as a device-memory region) to a
    /// virtual receive queue; it is the pool's provider.
    let binding: DevmemBinding?
    /// With `--provider cuda[:N]`: the GPU memory and the consumer that moves each message there.
    let gpu: CLIGPUReceiveMemory?
    let gpuConsumer: CLIGPUConsumer?
    private static let nextQueue = Atomic<Int>(0)
    let receiver: StreamReceiver
    let framer: StreamFramer
    let logger: Logger

    // Counters any thread may read.
    let payloadBytes = Atomic<Int>(0)
    let frames = Atomic<Int>(0)
    let connectionsEnded = Atomic<Int>(0)
    let connectionsFailed = Atomic<Int>(0)
    let sequenceErrors = Atomic<Int>(0)
    let checksumsVerified = Atomic<Int>(0)
    private let reportsBox = Mutex<[ConnectionReport]>([])

    // RX-thread state.
    private final class PerConnection {
        var sha: SHA256?
        var crcDigest: SHA256?
        var nextSequence: UInt64?
        var sequenceErrors = 0
    }
    private var perConnection: [ConnectionID: PerConnection] = [:]

    init(_ options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        // Twice the ring's buffers, so chunks the application still holds do not starve it.
        let chunks = options.bufferCount * 2
        if let spec = options.gpu {
            let memory = try CLIGPUReceiveMemory(spec: spec, landing: options.gpuLanding, chunkSize: options.chunkSize,
                                                 chunkCount: chunks, maxMessage: options.framed ? options.maxPayload : options.chunkSize)
            gpu = memory
            provider = memory.provider
            area = memory.area
            binding = memory.binding
            pool = try memory.makePool(poolSize: chunks)
        } else if options.provider == .memfd {
            gpu = nil
            guard DevmemBinding.allowedChunkSizes.contains(options.chunkSize) else {
                throw CLIError("a memfd region's binding uses 4K, 64K or 2M chunks, not \(CLIFormat.bytes(options.chunkSize))")
            }
            let region = try DeviceMemoryRegion(exporter: MemfdExporter(size: chunks * options.chunkSize, name: "netmem-recv"))
            let queue = ReceiveQueue(interface: "loopback", index: Self.nextQueue.add(1, ordering: .relaxed).newValue)
            let binding = try DevmemBinding(region: region, queues: [queue], chunkSize: options.chunkSize)
            self.binding = binding
            provider = binding
            area = binding.areas[0]
            pool = try binding.makePool(for: queue, poolSize: chunks)
        } else {
            let provider = try options.provider.make(chunkSize: options.chunkSize, count: chunks)
            self.provider = provider
            switch provider {
            case let p as HostPageProvider: area = p.area
            case let p as HugePageProvider: area = p.area
            case let p as SharedMemoryProvider: area = p.area
            default: preconditionFailure("unknown provider \(provider)")
            }
            binding = nil
            gpu = nil
            pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: "recv"))
        }
        receiver = try StreamReceiver(pool: pool, configuration: StreamReceiver.Configuration(bufferCount: options.bufferCount))
        if options.framed {
            let largest = StreamFramer.largestPayload(for: receiver)
            guard options.maxPayload <= largest else {
                throw CLIError("a maximum payload of \(CLIFormat.bytes(options.maxPayload)) does not fit the receive ring "
                    + "(\(options.bufferCount) × \(CLIFormat.bytes(options.chunkSize)) holds frames up to \(CLIFormat.bytes(largest))); "
                    + "raise --buffers or --chunk, or lower --max-payload")
            }
        }
        framer = StreamFramer(mode: options.framed ? .framed(maxPayload: options.maxPayload) : .raw, receiver: receiver)
        gpuConsumer = try gpu?.makeConsumer(returningTo: framer.ledger)
    }

    var reports: [ConnectionReport] { reportsBox.withLockChecked { $0 } }

    /// Runs the receive loop on the calling thread until `stop()`, the deadline, or the
    /// configured number of connections ended.
    func run(deadline: ContinuousClock.Instant? = nil) throws {
        try receiver.run(deadline: deadline) { event in
            self.framer.handle(event) { framed in self.consume(framed) }
        }
        try gpuConsumer?.finish()
        framer.abortAll()
    }

    func stop() { receiver.stop() }

    private func consume(_ event: StreamFramer.Event) {
        switch event {
        case let .frame(id, frame):
            let state = connectionState(id)
            let message = frame.message
            let length = message.payloadLength
            if options.sha256 { hash(message, into: &state.sha) }
            if let header = frame.header {
                if options.checkSequence {
                    if let expected = state.nextSequence, header.sequence != expected {
                        state.sequenceErrors += 1
                        sequenceErrors.add(1, ordering: .relaxed)
                    }
                    state.nextSequence = header.sequence &+ 1
                }
                if options.digestFrameCRCs {
                    withUnsafeBytes(of: header.payloadCRC32C.littleEndian) { state.crcDigest?.update(bufferPointer: $0) }
                }
            }
            if let gpuConsumer {
                // The GPU consumer takes the tokens and returns them when the device copy completes.
                do { try gpuConsumer.consume(message) } catch { logger.error("GPU: \(error)") }
            } else {
                do {
                    try framer.ledger.dontNeed(message)
                } catch {
                    preconditionFailure("tokens of a frame just delivered were refused: \(error)")
                }
            }
            payloadBytes.add(length, ordering: .relaxed)
            frames.add(1, ordering: .relaxed)
        case let .ended(id, summary):
            let state = perConnection.removeValue(forKey: id) ?? PerConnection()
            checksumsVerified.add(summary.statistics.checksumsVerified, ordering: .relaxed)
            let report = ConnectionReport(
                id: id, summary: summary,
                sha256: state.sha.map { CLIFormat.hex($0.finalize()) },
                frameCRCDigest: state.crcDigest.map { CLIFormat.hex($0.finalize()) },
                sequenceErrors: state.sequenceErrors)
            reportsBox.withLockChecked { $0.append(report) }
            if let error = summary.error {
                connectionsFailed.add(1, ordering: .relaxed)
                logger.error("\(id) failed: \(error)", metadata: ["bytes": "\(summary.statistics.bytes)"])
            } else if options.logConnections {
                var line = "\(id) ended (\(summary.end)): \(CLIFormat.bytes(summary.statistics.bytes))"
                if options.framed { line += ", \(summary.statistics.frames) frames, \(summary.statistics.checksumsVerified) CRC-32C verified" }
                if let sha = report.sha256 { line += ", sha256 \(sha)" }
                logger.info("\(line)")
            }
            let ended = connectionsEnded.add(1, ordering: .relaxed).newValue
            if options.stopAfterConnections > 0 && ended >= options.stopAfterConnections { receiver.stop() }
        }
    }

    private func connectionState(_ id: ConnectionID) -> PerConnection {
        if let s = perConnection[id] { return s }
        let s = PerConnection()
        if options.sha256 { s.sha = SHA256() }
        if options.digestFrameCRCs { s.crcDigest = SHA256() }
        perConnection[id] = s
        return s
    }

    private func hash(_ message: Message, into sha: inout SHA256?) {
        for f in message.fragments {
            guard let loc = f.location else { continue }
            let a = loc.ref.areaID == area.id ? area : loc.ref.area
            guard let base = a.address(of: loc.ref) else { continue }
            sha?.update(bufferPointer: UnsafeRawBufferPointer(start: base + Int(loc.offset), count: f.length))
        }
    }

    /// Buffers still out: chunks handed out by the pool, segments the ledger keeps, tokens
    /// out with consumers.
    var inFlight: (pool: Int, segments: Int, tokens: Int) {
        (pool.inFlight, framer.ledger.segmentsHeld, framer.ledger.tokensOutstanding)
    }

    /// One line of live state for progress output.
    var progressExtra: String {
        let s = receiver.statistics
        return "in flight \(s.buffersHeldByApplication) buffers (\(s.buffersInRing) in ring), \(framer.openConnections) open"
    }

    /// Ends the session after `run` returned (on the calling thread, which becomes the
    /// pool's owner): destroys the pool, so its cached chunks go back to the provider, and
    /// unbinds the region. Returns the shutdown state.
    func shutDown() -> (pool: PagePool.ShutdownStatus, binding: BindingReport?) {
        pool.adoptOwnership()
        pool.destroy()
        binding?.unbind()
        return (pool.pollShutdown(), binding?.report)
    }

    /// The final statistics, one "name value" per line.
    func summaryLines() -> [String] {
        var lines: [String] = []
        let p = pool.stats
        lines.append("pool: " + p.description)
        lines.append("receiver: " + receiver.statistics.description)
        let f = inFlight
        lines.append("in flight: pool \(f.pool), segments \(f.segments), tokens \(f.tokens)")
        lines.append("provider: " + provider.describe().description)
        lines += gpuConsumer?.summaryLines() ?? []
        if let binding { lines.append("binding: \(binding.report) (region \(binding.region))") }
        return lines
    }
}
