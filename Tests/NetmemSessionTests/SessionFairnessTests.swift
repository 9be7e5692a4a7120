import Glibc
import Netmem
import NetmemFraming
import NetmemSession
import NetmemTestSupport
import NetmemURing
import Synchronization
import SystemPackage
import Testing

/// Senders that would stall a receiver whose incomplete frames could hold all its memory.
@Suite("Framed receive: no connection stalls the others", .serialized)
struct SessionFairnessTests {
    /// Sends frames of `sizes` (seeded payloads) and closes; the digest of the payloads.
    /// With a `gate`, the frames are made first and sent once every sender of the gate
    /// is ready, so they all arrive at once.
    static func sender(to address: SocketAddress, sizes: [Int], seed: UInt64, digests: Digests,
                       gate: StartGate? = nil) -> TestThread {
        TestThread {
            var rng = SplitMix64(seed: seed)
            var sha = SHA256Stream()
            var w = FrameWriter(streamID: UInt32(truncatingIfNeeded: seed))
            let frames = sizes.map { n in
                let p = rng.bytes(n)
                sha.update(p)
                return w.encode(p)
            }
            gate?.arriveAndWait()
            do {
                let s = try BlockingSocket.connect(to: address)
                for f in frames { try s.sendAll(f) }
                try s.close()
            } catch { Issue.record("sender \(seed): \(error)") }
            digests.add(sha.hex)
        }
    }

    /// Lets threads start something together (waits at most 60 s).
    final class StartGate: Sendable {
        let parties: Int
        let arrived = Atomic<Int>(0)
        init(parties: Int) { self.parties = parties }
        func arriveAndWait() {
            arrived.add(1, ordering: .acquiringAndReleasing)
            let deadline = ContinuousClock.now + .seconds(60)
            while arrived.load(ordering: .acquiring) < parties && ContinuousClock.now < deadline { usleep(1000) }
        }
    }

    final class Digests: Sendable {
        let value = Mutex<[String]>([])
        func add(_ d: String) { value.withLockChecked { $0.append(d) } }
        var all: [String] { value.withLockChecked { $0 } }
    }

    /// What the receiving lab saw, as digests per connection.
    static func received(_ lab: SessionLab) -> [String] {
        lab.state.withLockChecked { s in s.ended.filter { $0.summary.error == nil }.map { SessionTest.sha256(s.payload[$0.id] ?? []) } }
    }

    @Test("Two senders of maximum-size frames at once both complete (defaults: 64 × 64 KiB, max payload 2 MiB)",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func twoMaximumFrames() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 2 << 20), buffers: 64)
        try lab.start()
        let digests = Digests()
        let senders = (0..<2).map { Self.sender(to: lab.address, sizes: [2 << 20, 2 << 20, 2 << 20], seed: UInt64(100 + $0), digests: digests) }
        for s in senders { s.join() }
        #expect(lab.wait(seconds: 60) { $0.ended.count == 2 })
        #expect(Set(Self.received(lab)) == Set(digests.all))
        try lab.finish()
    }

    @Test("Forty senders of 1-2 MiB frames at once all complete with the right bytes",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func manyLargeFrames() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 2 << 20), buffers: 64)
        try lab.start()
        let digests = Digests()
        var rng = SplitMix64(seed: 5)
        let senders = (0..<40).map { i in
            Self.sender(to: lab.address, sizes: [Int(rng.next() % (1 << 20)) + (1 << 20), Int(rng.next() % 1000) + 1],
                        seed: UInt64(200 + i), digests: digests)
        }
        for s in senders { s.join() }
        #expect(lab.wait(seconds: 120) { $0.ended.count == 40 })
        let got = Self.received(lab)
        #expect(got.count == 40, "\(lab.session.statistics)")
        #expect(Set(got) == Set(digests.all))
        try lab.finish()
    }

    @Test("Two hundred senders of two large frames each at once all complete: what waits for its turn is a header, not payload",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func twoHundredSenders() throws {
        // 2 MiB of receive memory and as much staging for 200 MiB of frames that mostly wait.
        let lab = try SessionLab(mode: .framed(maxPayload: 1 << 20), buffers: 32) { $0.partialFrameTimeout = .seconds(20) }
        try lab.start()
        let digests = Digests()
        var rng = SplitMix64(seed: 9)
        let gate = StartGate(parties: 200)
        let senders = (0..<200).map { i in
            Self.sender(to: lab.address, sizes: [Int(rng.next() % (256 << 10)) + (768 << 10) + 1, Int(rng.next() % (64 << 10)) + 1],
                        seed: UInt64(1000 + i), digests: digests, gate: gate)
        }
        for s in senders { s.join() }
        #expect(lab.wait(seconds: 240) { $0.ended.count == 200 })
        let got = Self.received(lab)
        let statistics = lab.session.statistics
        #expect(got.count == 200, "\(statistics)")
        #expect(Set(got) == Set(digests.all))
        #expect(statistics.frameTimeouts == 0)
        #expect(statistics.framesWaiting == 0 && statistics.reservedBytes == 0 && statistics.stagingInUse == 0,
                "nothing waits or stays reserved once every connection ended: \(statistics)")
        try lab.finish()
    }

    @Test("Eight maximum-size frames sent piece by piece in lockstep (16 MiB incomplete at once, 8 MiB of memory) all complete",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func lockstepFrames() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 2 << 20), buffers: 64)
        try lab.start()
        let senders = 8
        let round = Atomic<Int>(0)
        let digests = Digests()
        let threads = (0..<senders).map { i in
            TestThread {
                var rng = SplitMix64(seed: UInt64(500 + i))
                let payload = rng.bytes(2 << 20)
                var w = FrameWriter(streamID: UInt32(i))
                let frame = w.encode(payload)
                do {
                    let s = try BlockingSocket.connect(to: lab.address)
                    var at = 0
                    var r = 0
                    while at < frame.count {
                        // Everyone sends piece r before anyone sends piece r + 1 (bounded wait).
                        let deadline = ContinuousClock.now + .seconds(5)
                        while round.load(ordering: .acquiring) < r * senders && ContinuousClock.now < deadline { usleep(200) }
                        let n = min(64 << 10, frame.count - at)
                        try s.sendAll(Array(frame[at..<(at + n)]))
                        at += n
                        r += 1
                        round.add(1, ordering: .releasing)
                    }
                    try s.close()
                } catch { Issue.record("sender \(i): \(error)") }
                digests.add(SessionTest.sha256(payload))
            }
        }
        for t in threads { t.join() }
        #expect(lab.wait(seconds: 60) { $0.ended.count == senders }, "\(lab.session.statistics)")
        #expect(Set(Self.received(lab)) == Set(digests.all))
        try lab.finish()
    }

    @Test("A trickling sender (4 KiB chunks) neither stalls a fast one nor outlasts its timeout",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func trickleDoesNotStall() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 64 << 10), chunkSize: 4096, buffers: 64) {
            $0.partialFrameTimeout = .seconds(3)
        }
        try lab.start()
        // The trickler: a frame header, then a byte at a time.
        let stop = Atomic<Bool>(false)
        let trickler = TestThread {
            do {
                let s = try BlockingSocket.connect(to: lab.address)
                defer { try? s.close() }
                var w = FrameWriter()
                let frame = w.encode([UInt8](repeating: 7, count: 60_000))
                try s.sendAll(Array(frame[..<40]))
                var at = 40
                // Bounded: at most 600 bytes (the timeout ends the connection long before).
                while at < 640 && !stop.load(ordering: .relaxed) {
                    if (try? s.sendAll([frame[at]])) == nil { break }
                    at += 1
                    usleep(10_000)
                }
            } catch { Issue.record("trickler: \(error)") }
        }
        let digests = Digests()
        var rng = SplitMix64(seed: 9)
        let sizes = (0..<600).map { _ in Int(rng.next() % (64 << 10)) + 1 }
        let fast = Self.sender(to: lab.address, sizes: sizes, seed: 300, digests: digests)
        fast.join()
        #expect(lab.wait(seconds: 60) { $0.ended.contains { $0.summary.error == nil } })
        #expect(Self.received(lab) == digests.all)
        // The trickler is ended by its timeout, alone.
        #expect(lab.wait(seconds: 30) { $0.ended.count == 2 })
        stop.store(true, ordering: .relaxed)
        trickler.join()
        let ended = lab.state.withLockChecked { $0.ended }
        let slow = ended.first { $0.summary.error != nil }
        if case .partialFrameTimedOut? = slow?.summary.error {} else {
            Issue.record("the trickler ended with \(slow.map { "\($0.summary.error!)" } ?? "no error")")
        }
        #expect(lab.session.statistics.frameTimeouts == 1)
        try lab.finish()
    }

    @Test("Two clients holding a frame one byte short of 2 MiB do not starve a third past their timeout",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func holdersTimeOut() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 2 << 20), buffers: 64) {
            $0.partialFrameTimeout = .seconds(2)
        }
        try lab.start()
        var w = FrameWriter()
        let big = w.encode(TestData.bytes(count: 2 << 20, seed: 1))
        let holders = try (0..<2).map { _ in try lab.connect() }
        for h in holders { try h.sendAll(Array(big.dropLast())) }
        #expect(lab.wait(seconds: 20) { $0.connected.count == 2 })
        let digests = Digests()
        let third = Self.sender(to: lab.address, sizes: [2 << 20, 1000], seed: 400, digests: digests)
        third.join()
        #expect(lab.wait(seconds: 60) { $0.ended.count == 3 })
        #expect(Self.received(lab) == digests.all)
        let timeouts = lab.state.withLockChecked { $0.ended.filter { if case .partialFrameTimedOut? = $0.summary.error { true } else { false } } }
        #expect(timeouts.count == 2)
        for h in holders { try h.close() }
        try lab.finish()
    }
}

/// SHA-256 of a stream of byte arrays.
struct SHA256Stream {
    private var sha = SHA256Box()
    mutating func update(_ bytes: [UInt8]) { sha.update(bytes) }
    var hex: String { sha.hex }
}
