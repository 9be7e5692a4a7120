import Glibc
import Netmem
import NetmemDevice
@testable import NetmemURing
import Synchronization
import SystemPackage
import Testing

/// A joinable thread for the loopback tests.
final class FramingThread: @unchecked Sendable {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    private var tid = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) {
        let arg = Unmanaged.passRetained(Box(body)).toOpaque()
        let r = pthread_create(&tid, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, arg)
        precondition(r == 0, "pthread_create failed: \(r)")
    }

    func join() { pthread_join(tid, nil) }
}

/// A StreamReceiver + StreamFramer on loopback, run on its own thread, with a consumer
/// that records what arrived. Everything bounded in time.
final class FramingLoopback: @unchecked Sendable {
    struct Ended: Sendable {
        var id: ConnectionID
        var error: FrameError?
        var frames: Int
        var bytes: Int
    }

    final class Log: @unchecked Sendable {
        struct State {
            var connected: [ConnectionID] = []
            var payload: [ConnectionID: [UInt8]] = [:]
            var sequences: [ConnectionID: [UInt64]] = [:]
            var ended: [Ended] = []
            var held: [Message] = []
        }
        let state = Mutex(State())
    }

    static let probe: IOURing.Features? = try? IOURing.probeFeatures()
    /// Whether io_uring provided-buffer rings work here; tests that need them are skipped
    /// otherwise (the reason is printed).
    static let available: Bool = {
        let ok = probe?.providedBufferRings ?? false
        if !ok { print("SKIP: io_uring provided-buffer rings are not available (\(probe.map { "\($0)" } ?? "io_uring unavailable"))") }
        return ok
    }()

    let provider: any MemoryProvider
    let area: NetmemArea
    /// Set when the pool's memory is a memfd region bound to a (virtual) queue.
    let binding: DevmemBinding?
    static let nextQueue = Atomic<Int>(0)
    let pool: PagePool
    let receiver: StreamReceiver
    let framer: StreamFramer
    let listener: FileDescriptor
    let address: SocketAddress
    let log = Log()
    /// When set, the consumer keeps every message's tokens instead of returning them.
    let holdTokens = Atomic<Bool>(false)
    private var thread: FramingThread?
    let runError = Mutex<String?>(nil)

    init(mode: FrameParser<ReceivedSegment>.Mode, chunkSize: Int = 64 << 10, buffers: Int = 32, bound: Bool = false) throws {
        if bound {
            let region = try DeviceMemoryRegion(exporter: MemfdExporter(size: buffers * 2 * chunkSize, name: "framing-test"))
            let queue = ReceiveQueue(interface: "framing-test", index: Self.nextQueue.add(1, ordering: .relaxed).newValue)
            let binding = try DevmemBinding(region: region, queues: [queue], chunkSize: chunkSize)
            self.binding = binding
            provider = binding
            area = binding.areas[0]
            pool = try binding.makePool(for: queue, poolSize: buffers * 2)
        } else {
            let host = try HostPageProvider(chunkSize: chunkSize, chunkCount: buffers * 2)
            provider = host
            area = host.area
            binding = nil
            pool = try PagePool(PagePool.Configuration(provider: host, poolSize: buffers * 2, name: "framing-test"))
        }
        receiver = try StreamReceiver(pool: pool, configuration: StreamReceiver.Configuration(bufferCount: buffers))
        framer = StreamFramer(mode: mode, receiver: receiver)
        listener = try BlockingSocket.listen(on: SocketAddress(parsing: "127.0.0.1:0"))
        address = try BlockingSocket.localAddress(of: listener)
        receiver.listen(on: listener)
    }

    deinit { try? listener.close() }

    func start() {
        thread = FramingThread { [self] in
            do {
                try receiver.run(deadline: .now + .seconds(60)) { event in
                    self.framer.handle(event) { e in self.consume(e) }
                }
                framer.abortAll()
            } catch {
                runError.withLockChecked { $0 = "\(error)" }
            }
        }
    }

    private func consume(_ event: StreamFramer.Event) {
        switch event {
        case let .frame(id, frame):
            var bytes: [UInt8] = []
            for f in frame.message.fragments {
                let loc = f.location!
                bytes += UnsafeRawBufferPointer(start: area.address(of: loc.ref)! + Int(loc.offset), count: f.length)
            }
            let hold = holdTokens.load(ordering: .relaxed)
            log.state.withLockChecked { s in
                s.payload[id, default: []] += bytes
                if let h = frame.header { s.sequences[id, default: []].append(h.sequence) }
                if hold { s.held.append(frame.message) }
            }
            if !hold {
                do { try framer.ledger.dontNeed(frame.message) } catch { Issue.record("dontNeed failed: \(error)") }
            }
        case let .ended(id, summary):
            log.state.withLockChecked {
                $0.ended.append(Ended(id: id, error: summary.error, frames: summary.statistics.frames, bytes: summary.statistics.bytes))
            }
        }
    }

    /// Returns every held message's tokens (from the calling thread).
    func releaseHeld() throws {
        let held = log.state.withLockChecked { s -> [Message] in
            let h = s.held
            s.held.removeAll()
            return h
        }
        for m in held { try framer.ledger.dontNeed(m) }
    }

    /// Waits (at most `seconds`) until `condition` holds.
    @discardableResult
    func wait(seconds: Double = 20, _ condition: (Log.State) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if log.state.withLockChecked({ condition($0) }) { return true }
            usleep(2000)
        }
        return false
    }

    func connect() throws -> FileDescriptor { try BlockingSocket.connect(to: address) }

    /// Stops the receiver, joins its thread and checks nothing is in flight anywhere.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try releaseHeld()
        receiver.stop()
        thread?.join()
        thread = nil
        let err = runError.withLockChecked { $0 }
        #expect(err == nil, "receiver run failed: \(err ?? "")", sourceLocation: sourceLocation)
        #expect(framer.ledger.segmentsHeld == 0, "ledger still keeps segments", sourceLocation: sourceLocation)
        #expect(framer.ledger.tokensOutstanding == 0, "tokens still out", sourceLocation: sourceLocation)
        #expect(receiver.statistics.buffersHeldByApplication == 0, sourceLocation: sourceLocation)
        #expect(pool.inFlight == 0, "pool reports \(pool.inFlight) buffers in flight", sourceLocation: sourceLocation)
        // Tear down as a queue does: destroy the pool, unbind; both must finish.
        pool.adoptOwnership()
        pool.destroy()
        #expect(pool.pollShutdown() == .finished, sourceLocation: sourceLocation)
        if let binding {
            binding.unbind()
            #expect(binding.report.outstanding == 0, "\(binding.report)", sourceLocation: sourceLocation)
            #expect(binding.report.freed, "\(binding.report)", sourceLocation: sourceLocation)
        }
    }
}

extension FileDescriptor {
    func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try BlockingSocket.sendAll(self, $0) }
    }
}

@Suite("Framing over loopback (io_uring StreamReceiver)", .serialized)
struct FramingLoopbackTests {
    static func randomSizes(_ rng: inout SplitMix64, count: Int) -> [Int] {
        var sizes = [1, 4 << 20]
        for _ in 0..<(count - 2) {
            switch rng.next() % 4 {
            case 0: sizes.append(Int(rng.next() % 64) + 1)
            case 1: sizes.append(Int(rng.next() % 70_000) + 1)
            case 2: sizes.append(Int(rng.next() % (1 << 20)) + 1)
            default: sizes.append(Int(rng.next() % (4 << 20)) + 1)
            }
        }
        return sizes
    }

    @Test("Framed: random message sizes from 1 byte to 4 MiB arrive byte-exact, CRC checked",
          .enabled(if: FramingLoopback.available, "needs io_uring provided-buffer rings"),
          arguments: [false, true])
    func framedByteExact(bound: Bool) throws {
        // A frame's payload stays in the ring until it is complete: give it 10 MiB of buffers.
        // `bound`: the memory is a memfd region bound through a DevmemBinding.
        let lab = try FramingLoopback(mode: .framed(maxPayload: 4 << 20), buffers: 160, bound: bound)
        #expect(StreamFramer.largestPayload(for: lab.receiver) >= 4 << 20)
        lab.start()
        var rng = SplitMix64(seed: 2024)
        let sizes = Self.randomSizes(&rng, count: 14)
        let payloads = sizes.map { rng.bytes($0) }
        let sender = FramingThread {
            do {
                let s = try lab.connect()
                var w = FrameWriter(streamID: 3, firstSequence: 0, checksums: true)
                for (i, p) in payloads.enumerated() {
                    w.checksums = i % 3 != 2
                    try p.withUnsafeBytes { try w.write($0, to: s) }
                }
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        let (ended, data, seqs) = lab.log.state.withLockChecked { ($0.ended, $0.payload, $0.sequences) }
        #expect(ended.first?.error == nil, "\(ended.first?.error.map { "\($0)" } ?? "")")
        #expect(ended.first?.frames == payloads.count)
        let id = ended.first!.id
        #expect(seqs[id] == Array(0..<UInt64(payloads.count)))
        #expect(data[id] == payloads.flatMap { $0 })
        try lab.finish()
    }

    @Test("Raw: random-size sends arrive byte-exact as fragments",
          .enabled(if: FramingLoopback.available, "needs io_uring provided-buffer rings"))
    func rawByteExact() throws {
        let lab = try FramingLoopback(mode: .raw)
        lab.start()
        var rng = SplitMix64(seed: 99)
        let chunks = Self.randomSizes(&rng, count: 10).map { rng.bytes($0) }
        let sender = FramingThread {
            do {
                let s = try lab.connect()
                for c in chunks { try s.sendAll(c) }
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        let (ended, data) = lab.log.state.withLockChecked { ($0.ended, $0.payload) }
        #expect(ended.first?.error == nil)
        #expect(data[ended.first!.id] == chunks.flatMap { $0 })
        try lab.finish()
    }

    @Test("Each bad input ends its connection with the right error while another goes on",
          .enabled(if: FramingLoopback.available, "needs io_uring provided-buffer rings"))
    func badInputsEndOnlyTheirConnection() throws {
        let lab = try FramingLoopback(mode: .framed(maxPayload: 1 << 20))
        lab.start()
        // The good connection: first to connect, sends frames between the bad cases.
        let good = try lab.connect()
        var writer = FrameWriter(streamID: 1, firstSequence: 0, checksums: true)
        var goodPayloads: [[UInt8]] = []
        var rng = SplitMix64(seed: 5)
        func sendGood() throws {
            let p = rng.bytes(Int(rng.next() % 100_000) + 1)
            goodPayloads.append(p)
            try p.withUnsafeBytes { try writer.write($0, to: good) }
        }
        try sendGood()
        #expect(lab.wait { $0.connected(count: 1) })
        let goodID = lab.log.state.withLockChecked { $0.payload.keys.first }

        func header(_ mutate: (inout FrameHeader) -> Void) -> [UInt8] {
            var h = FrameHeader(sequence: 0, payloadLength: 16)
            mutate(&h)
            return h.encoded.prefix(32) + [UInt8](repeating: 7, count: 16)
        }
        var w2 = FrameWriter()
        let full = w2.encode([UInt8](repeating: 1, count: 1000))
        enum Ending { case close, reset, stayOpen }
        let cases: [(String, [UInt8], Ending, (FrameError?) -> Bool)] = [
            ("wrong magic", header { $0.magic = 0x5453_4F50 }, .stayOpen, { $0 == .badMagic(0x5453_4F50) }),
            ("wrong version", header { $0.version = 3 }, .stayOpen, { $0 == .badVersion(3) }),
            ("header_length 31", header { $0.headerLength = 31 }, .stayOpen, { $0 == .headerLengthTooSmall(31) }),
            ("header_length 4097", header { $0.headerLength = 4097 }, .stayOpen, { $0 == .headerLengthTooLarge(4097) }),
            ("payload too large", header { $0.payloadLength = (1 << 20) + 1 }, .stayOpen,
             { $0 == .payloadTooLarge((1 << 20) + 1, maximum: 1 << 20) }),
            ("close mid-header", Array(full[..<12]), .close, { $0 == .closedInHeader(received: 12, expected: 32) }),
            ("close mid-payload", Array(full[..<532]), .close, { $0 == .closedInPayload(received: 500, expected: 1000) }),
            ("reset mid-payload", Array(full[..<300]), .reset, {
                if case .connectionFailed(errno: ECONNRESET, _)? = $0 { return true }
                return false
            }),
        ]
        for (index, (name, bytes, ending, matches)) in cases.enumerated() {
            let bad = try lab.connect()
            try bad.sendAll(bytes)
            switch ending {
            case .close: try bad.close()
            case .reset:
                usleep(50_000) // let the bytes arrive first
                BlockingSocket.closeWithReset(bad)
            case .stayOpen: break
            }
            let ok = lab.wait { $0.ended.count == index + 1 }
            #expect(ok, "\(name): the connection did not end")
            if case .stayOpen = ending { try? bad.close() }
            let ended = lab.log.state.withLockChecked { $0.ended.last }
            #expect(ended?.id != goodID, "\(name): the good connection ended")
            #expect(matches(ended?.error), "\(name): got \(ended?.error.map { "\($0)" } ?? "no error")")
            try sendGood()
        }
        try good.close()
        #expect(lab.wait { $0.ended.count == cases.count + 1 })
        let (ended, data) = lab.log.state.withLockChecked { ($0.ended, $0.payload) }
        let goodEnd = ended.last
        #expect(goodEnd?.id == goodID)
        #expect(goodEnd?.error == nil)
        #expect(goodEnd?.frames == goodPayloads.count)
        if let goodID { #expect(data[goodID] == goodPayloads.flatMap { $0 }) }
        try lab.finish()
    }

    @Test("Backpressure: a consumer holding every token stalls the stream; releasing resumes it intact",
          .enabled(if: FramingLoopback.available, "needs io_uring provided-buffer rings"))
    func backpressure() throws {
        let lab = try FramingLoopback(mode: .raw, chunkSize: 16 << 10, buffers: 8)
        lab.holdTokens.store(true, ordering: .relaxed)
        lab.start()
        var rng = SplitMix64(seed: 11)
        let stream = rng.bytes(4 << 20) // far more than 8 × 16 KiB of buffers
        let sender = FramingThread {
            do {
                let s = try lab.connect()
                try s.sendAll(stream)
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        // The ring runs dry: the receiver pauses (counts it) and holds no more than its buffers.
        let deadline = ContinuousClock.now + .seconds(20)
        while lab.receiver.statistics.backpressureEvents == 0 && ContinuousClock.now < deadline { usleep(2000) }
        #expect(lab.receiver.statistics.backpressureEvents > 0)
        usleep(100_000)
        let heldBytes = lab.log.state.withLockChecked { $0.payload.values.reduce(0) { $0 + $1.count } }
        #expect(heldBytes <= 8 * (16 << 10), "received \(heldBytes) bytes with every buffer held")
        #expect(lab.framer.ledger.tokensOutstanding > 0)
        // Release everything and from now on return tokens at once.
        lab.holdTokens.store(false, ordering: .relaxed)
        try lab.releaseHeld()
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        try lab.releaseHeld()
        let (ended, data) = lab.log.state.withLockChecked { ($0.ended, $0.payload) }
        #expect(ended.first?.error == nil)
        #expect(data[ended.first!.id] == stream)
        #expect(lab.receiver.statistics.resumes > 0)
        try lab.finish()
    }
}

extension FramingLoopback.Log.State {
    func connected(count: Int) -> Bool { payload.count >= count }
}
