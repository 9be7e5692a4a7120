import Glibc
import Netmem
import NetmemURing
import Synchronization
import SystemPackage
import NetmemTestSupport
import Testing

@Suite("StreamReceiver over loopback", .serialized)
struct StreamReceiverTests {
    /// Sends `sizes` (random bytes) on one connection and checks that the receiver
    /// delivers exactly those bytes, in order, and gives every buffer back.
    func deliver(chunkSize: Int, bufferCount: Int, incremental: Bool?, bundle: Bool, seed: UInt64)
        throws -> StreamReceiver.Statistics
    {
        let (pool, _) = try URingTest.pool(chunkSize: chunkSize, chunks: bufferCount, name: "rx-test")
        var cfg = StreamReceiver.Configuration(bufferCount: bufferCount, incremental: incremental, bundle: bundle)
        cfg.idleWait = .milliseconds(5)
        let receiver = try StreamReceiver(pool: pool, configuration: cfg)
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let sizes = TestData.messageSizes(seed: seed, count: 14)
        let data = URingTest.bytes(count: sizes.reduce(0, +), seed: seed)
        let client = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))
        let failure = Mutex<String?>(nil)
        let sender = TestThread {
            defer { try? client.close() }
            do {
                try data.withUnsafeBytes { raw in
                    var off = 0
                    for s in sizes {
                        try Loopback.sendAll(client, UnsafeRawBufferPointer(rebasing: raw[off..<off + s]))
                        off += s
                    }
                }
            } catch { failure.withLockChecked { $0 = "send failed: \(error)" } }
        }
        let collector = StreamCollector()
        try receiver.run(untilIdle: true, deadline: .now + .seconds(60)) { event in
            switch consume event {
            case let .data(seg):
                collector.take(seg)
            case let .closed(id, end):
                collector.ends[id] = end
            default: break
            }
        }
        sender.join()
        #expect(failure.withLockChecked { $0 } == nil)
        #expect(collector.bytes.count == 1)
        let got = collector.bytes.values.first ?? []
        #expect(got.count == data.count)
        #expect(got == data, "delivered bytes differ from what was sent")
        #expect(collector.offsetsContiguous)
        #expect(collector.ends.values.first == .endOfStream)
        let stats = receiver.statistics
        #expect(stats.bytesReceived == data.count)
        #expect(stats.buffersHeldByApplication == 0)
        #expect(pool.inFlight == 0, "pool still has \(pool.inFlight) buffers out")
        print("delivery chunk=\(chunkSize) incremental=\(stats.incremental) bundle=\(stats.bundle): \(stats)")
        return stats
    }

    @Test("byte-exact delivery, 1 B to 4 MiB messages, whole-buffer mode",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func deliveryWholeBuffers() throws {
        let s = try deliver(chunkSize: 16 << 10, bufferCount: 64, incremental: false, bundle: false, seed: 11)
        #expect(!s.incremental)
    }

    @Test("byte-exact delivery with incremental buffer consumption (IOU_PBUF_RING_INC)",
          .enabled(if: URingTest.hasIncremental || URingTest.skipReason("incremental provided-buffer rings")))
    func deliveryIncremental() throws {
        let s = try deliver(chunkSize: 256 << 10, bufferCount: 16, incremental: true, bundle: false, seed: 12)
        #expect(s.incremental)
        // Several completions per buffer: pieces of one chunk were delivered separately.
        #expect(s.segmentsDelivered > 0)
    }

    @Test("byte-exact delivery with receive bundles",
          .enabled(if: (URingTest.features?.bundles ?? false) || URingTest.skipReason("receive bundles")))
    func deliveryBundles() throws {
        let s = try deliver(chunkSize: 8 << 10, bufferCount: 64, incremental: false, bundle: true, seed: 13)
        #expect(s.bundle)
    }

    @Test("backpressure: the app holds every segment, the receiver stops, then all data arrives intact",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func backpressure() throws {
        let bufferCount = 8
        let (pool, _) = try URingTest.pool(chunkSize: 16 << 10, chunks: bufferCount, name: "bp-test")
        var cfg = StreamReceiver.Configuration(bufferCount: bufferCount, incremental: false)
        cfg.idleWait = .milliseconds(5)
        let receiver = try StreamReceiver(pool: pool, configuration: cfg)
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let data = URingTest.bytes(count: 3 << 20, seed: 21)
        let client = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))
        let sender = TestThread {
            defer { try? client.close() }
            try? data.withUnsafeBytes { try Loopback.sendAll(client, $0) }
        }
        let held = Mutex<[HeldSegment]>([])
        let runDone = Atomic<Bool>(false)
        let output = Mutex<[UInt8]>([])
        let heldAtStall = Atomic<Int>(-1)
        let inRingAtStall = Atomic<Int>(-1)
        // The application: holds everything until the receiver reports backpressure,
        // then checks and releases what it held, from this other thread.
        let app = TestThread {
            let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
            while receiver.statistics.backpressureEvents == 0 && ContinuousClock.now < deadline && !runDone.load(ordering: .acquiring) {
                usleep(1000)
            }
            usleep(20_000)  // let the receiver sit stalled a moment
            heldAtStall.store(held.withLockChecked { $0.count }, ordering: .relaxed)
            inRingAtStall.store(receiver.statistics.buffersInRing, ordering: .relaxed)
            while true {
                let batch = held.withLockChecked { h -> [HeldSegment] in
                    let b = h
                    h.removeAll()
                    return b
                }
                for seg in batch {
                    output.withLockChecked { $0.append(contentsOf: seg.bytes) }
                    seg.release()
                }
                if batch.isEmpty {
                    if runDone.load(ordering: .acquiring) && held.withLockChecked({ $0.isEmpty }) { break }
                    if ContinuousClock.now > deadline + .seconds(40) { break }
                    usleep(200)
                }
            }
        }
        var end: ConnectionEnd?
        try receiver.run(untilIdle: true, deadline: .now + .seconds(60)) { event in
            switch consume event {
            case let .data(seg):
                let box = HeldSegment(seg)
                held.withLockChecked { $0.append(box) }
            case let .closed(_, e): end = e
            default: break
            }
        }
        runDone.store(true, ordering: .releasing)
        app.join()
        sender.join()
        let stats = receiver.statistics
        print("backpressure: held at stall \(heldAtStall.load(ordering: .relaxed)), in ring \(inRingAtStall.load(ordering: .relaxed)); \(stats)")
        #expect(stats.backpressureEvents >= 1)
        #expect(stats.resumes >= 1)
        #expect(inRingAtStall.load(ordering: .relaxed) == 0)
        #expect(heldAtStall.load(ordering: .relaxed) >= 1)
        #expect(end == .endOfStream)
        let out = output.withLockChecked { $0 }
        #expect(out.count == data.count)
        #expect(out == data, "data changed while the application held it, or arrived out of order")
        #expect(pool.inFlight == 0, "pool still has \(pool.inFlight) buffers out")
    }

    @Test("a peer that resets ends only its own connection; the other one completes",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func peerReset() throws {
        let (pool, _) = try URingTest.pool(chunkSize: 16 << 10, chunks: 32, name: "reset-test")
        var cfg = StreamReceiver.Configuration(bufferCount: 32, incremental: false)
        cfg.idleWait = .milliseconds(5)
        let receiver = try StreamReceiver(pool: pool, configuration: cfg)
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let resetter = try Loopback.connect(port: port)
        let good = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))  // connection 1: the resetter
        receiver.adopt(try Loopback.accept(listener))  // connection 2: the good one
        let bad = URingTest.bytes(count: 100_000, seed: 31)
        let data = URingTest.bytes(count: 1 << 20, seed: 32)
        let t1 = TestThread {
            try? bad.withUnsafeBytes { try Loopback.sendAll(resetter, $0) }
            usleep(50_000)
            var l = linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(resetter.rawValue, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            try? resetter.close()
        }
        let t2 = TestThread {
            usleep(100_000)
            try? data.withUnsafeBytes { try Loopback.sendAll(good, $0) }
            try? good.close()
        }
        let collector = StreamCollector()
        try receiver.run(untilIdle: true, deadline: .now + .seconds(30)) { event in
            switch consume event {
            case let .data(seg): collector.take(seg)
            case let .closed(id, end): collector.ends[id] = end
            default: break
            }
        }
        t1.join()
        t2.join()
        let ids = collector.ends.keys.sorted { $0.rawValue < $1.rawValue }
        #expect(ids.count == 2)
        let first = ids[0], second = ids[1]
        #expect(collector.ends[first] == .reset)
        #expect(collector.ends[second] == .endOfStream)
        #expect(collector.bytes[second] == data)
        let partial = collector.bytes[first] ?? []
        #expect(partial.count <= bad.count && Array(bad.prefix(partial.count)) == partial)
        #expect(pool.inFlight == 0)
    }

    @Test("accepting from a listener, and stop() from another thread closes everything",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func acceptAndStop() throws {
        let (pool, _) = try URingTest.pool(chunkSize: 16 << 10, chunks: 16, name: "accept-test")
        let receiver = try StreamReceiver(pool: pool, configuration: .init(bufferCount: 16, incremental: false))
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        receiver.listen(on: listener)
        let data = URingTest.bytes(count: 200_000, seed: 41)
        let received = Atomic<Int>(0)
        let client = TestThread {
            guard let fd = try? Loopback.connect(port: port) else { return }
            try? data.withUnsafeBytes { try Loopback.sendAll(fd, $0) }
            let deadline = ContinuousClock.now + .seconds(10)
            while received.load(ordering: .acquiring) < data.count && ContinuousClock.now < deadline { usleep(1000) }
            receiver.stop()
            usleep(100_000)
            try? fd.close()
        }
        let collector = StreamCollector()
        var connected = 0
        try receiver.run(deadline: .now + .seconds(30)) { event in
            switch consume event {
            case .connected: connected += 1
            case let .data(seg):
                collector.take(seg)
                received.add(seg.length, ordering: .releasing)
            case let .closed(id, end): collector.ends[id] = end
            default: break
            }
        }
        client.join()
        #expect(connected == 1)
        #expect(collector.bytes.values.first == data)
        #expect(collector.ends.values.first == .closedLocally)
        #expect(pool.inFlight == 0)
    }

    @Test("close(_:) from the handler ends that connection and gives back its buffers",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func closeFromHandler() throws {
        let (pool, _) = try URingTest.pool(chunkSize: 16 << 10, chunks: 16, name: "close-test")
        let receiver = try StreamReceiver(pool: pool, configuration: .init(bufferCount: 16, incremental: false))
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let client = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))
        let sender = TestThread {
            let chunk = [UInt8](repeating: 7, count: 64 << 10)
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                let r = chunk.withUnsafeBytes { send(client.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if r < 0 { break }
            }
            try? client.close()
        }
        var end: ConnectionEnd?
        var bytes = 0
        try receiver.run(untilIdle: true, deadline: .now + .seconds(20)) { event in
            switch consume event {
            case let .data(seg):
                bytes += seg.length
                if bytes > 1 << 20 { receiver.close(seg.connection) }
            case let .closed(_, e): end = e
            default: break
            }
        }
        sender.join()
        #expect(end == .closedLocally)
        #expect(pool.inFlight == 0)
    }

    @Test("an app that always keeps most buffers still gets all the data (resume below the threshold)",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func keepsMostBuffers() throws {
        let bufferCount = 16
        let (pool, _) = try URingTest.pool(chunkSize: 16 << 10, chunks: bufferCount, name: "keep-test")
        var cfg = StreamReceiver.Configuration(bufferCount: bufferCount, incremental: false)
        cfg.resumeThreshold = 8
        let receiver = try StreamReceiver(pool: pool, configuration: cfg)
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let data = URingTest.bytes(count: 1 << 20, seed: 61)
        let client = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))
        let sender = TestThread {
            defer { try? client.close() }
            try? data.withUnsafeBytes { try Loopback.sendAll(client, $0) }
        }
        // Keep the newest 14 segments (nearly every buffer); release only older ones.
        var kept: [HeldSegment] = []
        var out: [UInt8] = []
        var end: ConnectionEnd?
        try receiver.run(untilIdle: true, deadline: .now + .seconds(30)) { event in
            switch consume event {
            case let .data(seg):
                kept.append(HeldSegment(seg))
                while kept.count > 14 {
                    let old = kept.removeFirst()
                    out += old.bytes
                    old.release()
                }
            case let .closed(_, e): end = e
            default: break
            }
        }
        sender.join()
        for seg in kept {
            out += seg.bytes
            seg.release()
        }
        let stats = receiver.statistics
        print("keeps most buffers: \(stats)")
        #expect(stats.backpressureEvents >= 1 && stats.resumes >= 1)
        #expect(end == .endOfStream)
        #expect(out == data)
        #expect(pool.inFlight == 0)
    }

    @Test("segments released after run() returned go back to the pool",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")))
    func releaseAfterRun() throws {
        let (pool, _) = try URingTest.pool(chunkSize: 16 << 10, chunks: 16, name: "late-test")
        let receiver = try StreamReceiver(pool: pool, configuration: .init(bufferCount: 16, incremental: false))
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let data = URingTest.bytes(count: 100_000, seed: 71)
        let client = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))
        try data.withUnsafeBytes { try Loopback.sendAll(client, $0) }
        try client.close()
        let held = Mutex<[HeldSegment]>([])
        try receiver.run(untilIdle: true, deadline: .now + .seconds(30)) { event in
            switch consume event {
            case let .data(seg):
                let box = HeldSegment(seg)
                held.withLockChecked { $0.append(box) }
            default: break
            }
        }
        let segments = held.withLockChecked { $0 }
        #expect(segments.reduce(0) { $0 + ($1.segment?.length ?? 0) } == data.count)
        #expect(receiver.statistics.buffersHeldByApplication > 0)
        #expect(pool.inFlight > 0)
        var out: [UInt8] = []
        for seg in segments { out += seg.bytes }
        #expect(out == data)
        // Release from another thread, after the RX loop is gone.
        let releaser = TestThread {
            for seg in segments { seg.release() }
        }
        releaser.join()
        #expect(receiver.statistics.buffersHeldByApplication == 0)
        #expect(pool.inFlight == 0, "pool still has \(pool.inFlight) buffers out")
    }
}
