import Glibc
import Netmem
import NetmemDevice
import NetmemFraming
import NetmemSession
import NetmemTestSupport
import NetmemURing
import Synchronization
import SystemPackage
import Testing

@Suite("Receive session over loopback (callbacks)", .serialized)
struct SessionLoopbackTests {
    static func randomSizes(_ rng: inout SplitMix64, count: Int, largest: Int = 4 << 20) -> [Int] {
        var sizes = [1, largest]
        for _ in 0..<(count - 2) {
            switch rng.next() % 4 {
            case 0: sizes.append(Int(rng.next() % 64) + 1)
            case 1: sizes.append(Int(rng.next() % 70_000) + 1)
            case 2: sizes.append(Int(rng.next() % (1 << 20)) + 1)
            default: sizes.append(Int(rng.next() % UInt64(largest)) + 1)
            }
        }
        return sizes
    }

    @Test("Framed into a memfd region of 1, 3, 8 and 64 segments with gaps: SHA-256 of what arrived is what was sent",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"),
          arguments: [1, 3, 8, 64])
    func framedAcrossSegments(segments: Int) throws {
        // 64 × 64 KiB ring, 128 chunks in the region: frames up to 2 MiB.
        let lab = try SessionLab(mode: .framed(maxPayload: 2 << 20), memory: .memfdRegion, buffers: 64, segments: segments)
        #expect(lab.session.region.segments.count == segments)
        // The segments' device addresses have gaps: nothing may assume one range.
        let segs = lab.session.region.segments
        for (a, b) in zip(segs, segs.dropFirst()) { #expect(b.deviceAddress > a.deviceAddress + UInt64(a.length)) }
        try lab.start()
        var rng = SplitMix64(seed: UInt64(2024 + segments))
        let payloads = Self.randomSizes(&rng, count: 24, largest: 2 << 20).map { rng.bytes($0) }
        let sender = TestThread {
            do {
                let s = try lab.connect()
                try s.sendFrames(payloads)
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        let (ended, data, seqs, regions) = lab.state.withLockChecked { ($0.ended, $0.payload, $0.sequences, $0.regionIDs) }
        let end = try #require(ended.first)
        #expect(end.summary.error == nil, "\(end.summary.error.map { "\($0)" } ?? "")")
        #expect(end.summary.statistics.frames == payloads.count)
        #expect(seqs[end.id] == Array(0..<UInt64(payloads.count)))
        #expect(SessionTest.sha256(data[end.id] ?? []) == SessionTest.sha256(payloads.flatMap { $0 }))
        #expect(regions == [lab.session.region.id])
        try lab.finish()
    }

    @Test("Raw into a memfd region of 1, 3, 8 and 64 segments: SHA-256 of what arrived is what was sent",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"),
          arguments: [1, 3, 8, 64])
    func rawAcrossSegments(segments: Int) throws {
        let lab = try SessionLab(mode: .raw, memory: .memfdRegion, buffers: 64, segments: segments)
        try lab.start()
        var rng = SplitMix64(seed: UInt64(99 + segments))
        let data = rng.bytes(6_000_000 + Int(rng.next() % 4096))
        let seed = rng.next()
        let sender = TestThread {
            var sizes = SplitMix64(seed: seed)
            do {
                let s = try lab.connect()
                var at = 0
                while at < data.count {
                    let n = min(data.count - at, Int(sizes.next() % 300_000) + 1)
                    try s.sendAll(Array(data[at..<(at + n)]))
                    at += n
                }
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        let (ended, got) = lab.state.withLockChecked { ($0.ended, $0.payload) }
        let end = try #require(ended.first)
        #expect(end.summary.error == nil)
        #expect(SessionTest.sha256(got[end.id] ?? []) == SessionTest.sha256(data))
        try lab.finish()
    }

    @Test("Framed into host memory: sizes from 1 byte to 4 MiB arrive byte-exact, CRC checked",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func framedHost() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 4 << 20), buffers: 160)
        try lab.start()
        var rng = SplitMix64(seed: 2025)
        let payloads = Self.randomSizes(&rng, count: 14).map { rng.bytes($0) }
        let sender = TestThread {
            do {
                let s = try lab.connect()
                try s.sendFrames(payloads)
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        let (ended, data) = lab.state.withLockChecked { ($0.ended, $0.payload) }
        let end = try #require(ended.first)
        #expect(end.summary.error == nil)
        #expect(end.summary.statistics.checksumsVerified == payloads.indices.filter { $0 % 3 != 2 }.count)
        #expect(data[end.id] == payloads.flatMap { $0 })
        try lab.finish()
    }

    @Test("Each bad input ends its connection with the right error while another goes on",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func badInputsEndOnlyTheirConnection() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 1 << 20))
        try lab.start()
        let good = try lab.connect()
        var writer = FrameWriter(streamID: 1, firstSequence: 0, checksums: true)
        var goodPayloads: [[UInt8]] = []
        var rng = SplitMix64(seed: 5)
        func sendGood() throws {
            let p = rng.bytes(Int(rng.next() % 100_000) + 1)
            goodPayloads.append(p)
            try good.sendAll(writer.encode(p))
        }
        try sendGood()
        #expect(lab.wait { !$0.payload.isEmpty })
        let goodID = lab.state.withLockChecked { $0.payload.keys.first }

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
                if case .connectionFailed(.connectionReset)? = $0 { return true }
                return false
            }),
        ]
        for (index, (name, bytes, ending, matches)) in cases.enumerated() {
            let bad = try lab.connect()
            try bad.sendAll(bytes)
            switch ending {
            case .close: try bad.close()
            case .reset:
                // Let the bytes arrive first (bounded wait for the receiver to see them).
                _ = lab.wait(seconds: 1) { $0.connected.count >= index + 2 }
                usleep(50_000)
                Loopback.closeWithReset(bad)
            case .stayOpen: break
            }
            let ok = lab.wait { $0.ended.count == index + 1 }
            #expect(ok, "\(name): the connection did not end")
            if case .stayOpen = ending { try? bad.close() }
            let ended = lab.state.withLockChecked { $0.ended.last }
            #expect(ended?.id != goodID, "\(name): the good connection ended")
            #expect(matches(ended?.summary.error), "\(name): got \(ended?.summary.error.map { "\($0)" } ?? "no error")")
            try sendGood()
        }
        try good.close()
        #expect(lab.wait { $0.ended.count == cases.count + 1 })
        let (ended, data) = lab.state.withLockChecked { ($0.ended, $0.payload) }
        let goodEnd = ended.last
        #expect(goodEnd?.id == goodID)
        #expect(goodEnd?.summary.error == nil)
        #expect(goodEnd?.summary.statistics.frames == goodPayloads.count)
        if let goodID { #expect(data[goodID] == goodPayloads.flatMap { $0 }) }
        #expect(lab.session.statistics.connectionsFailed == cases.count)
        try lab.finish()
    }

    @Test("Backpressure: a consumer holding every frame stalls the stream; letting go resumes it intact",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func backpressure() throws {
        let lab = try SessionLab(mode: .raw, chunkSize: 16 << 10, buffers: 8)
        lab.holdFrames.store(true, ordering: .relaxed)
        try lab.start()
        var rng = SplitMix64(seed: 11)
        let stream = rng.bytes(4 << 20)  // far more than the 16 × 16 KiB of memory
        let sender = TestThread {
            do {
                let s = try lab.connect()
                try s.sendAll(stream)
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        // The ring runs dry: the receiver pauses (counts it) and holds no more than its memory.
        let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
        while lab.session.statistics.receiver.backpressureEvents == 0 && ContinuousClock.now < deadline { usleep(2000) }
        #expect(lab.session.statistics.receiver.backpressureEvents > 0)
        let heldBytes = lab.state.withLockChecked { $0.payload.values.reduce(0) { $0 + $1.count } }
        #expect(heldBytes <= 16 * (16 << 10), "received \(heldBytes) bytes with every buffer held")
        #expect(lab.session.statistics.tokensOutstanding > 0)
        lab.holdFrames.store(false, ordering: .relaxed)
        lab.releaseHeld()
        sender.join()
        #expect(lab.wait { $0.ended.count == 1 })
        let (ended, data) = lab.state.withLockChecked { ($0.ended, $0.payload) }
        #expect(ended.first?.summary.error == nil)
        #expect(data[ended.first!.id] == stream)
        #expect(lab.session.statistics.receiver.resumes > 0)
        try lab.finish()
    }

    @Test("Frames held after the session stopped keep their bytes; the pool finishes when they go",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func framesOutliveTheSession() throws {
        let lab = try SessionLab(mode: .framed(maxPayload: 100_000))
        lab.holdFrames.store(true, ordering: .relaxed)
        try lab.start()
        var rng = SplitMix64(seed: 8)
        let payloads = (0..<10).map { _ in rng.bytes(Int(rng.next() % 90_000) + 1) }
        let s = try lab.connect()
        try s.sendFrames(payloads)
        try s.close()
        #expect(lab.wait { $0.ended.count == 1 })
        lab.session.stop()
        try lab.session.waitBlocking()
        #expect(lab.session.shutdownStatus.pool != .finished)  // the held frames keep chunks
        let held = lab.state.withLockChecked { $0.held }
        #expect(try held.map { try $0.message.payloadBytes() } == payloads)
        lab.state.withLockChecked { $0.held.removeAll() }
        _ = consume held
        #expect(lab.session.statistics.tokensOutstanding == 0)
        #expect(lab.session.shutdownStatus.pool == .finished)
    }

    @Test("A fragment of another region is refused by the region with a typed error")
    func wrongRegion() throws {
        let a = try DeviceMemoryRegion.memfd(size: 1 << 20)
        let b = try DeviceMemoryRegion.memfd(size: 1 << 20)
        let f = Fragment(regionOffset: 0, length: 10, token: 0, regionID: a.id)
        #expect(throws: DeviceMemoryError.wrongRegion(fragmentRegion: a.id, region: b.id)) { _ = try b.bytes(of: f) }
        var out = [UInt8](repeating: 0, count: 10)
        #expect(throws: DeviceMemoryError.wrongRegion(fragmentRegion: a.id, region: b.id)) {
            try out.withUnsafeMutableBytes { try b.copy(f, into: $0) }
        }
        #expect(throws: Never.self) { _ = try a.bytes(of: f) }
    }

    @Test("Configuration that cannot work is refused at init with a message naming it")
    func badConfigurations() throws {
        func refused(_ change: (inout ReceiveSession.Configuration) -> Void) -> ReceiveSessionError? {
            var c = ReceiveSession.Configuration()
            change(&c)
            do { _ = try ReceiveSession(c) } catch { return error }
            return nil
        }
        #expect(refused { $0.chunkSize = 3000 }?.description.contains("chunk size 3000") == true)
        #expect(refused { $0.bufferCount = 0 }?.description.contains("buffer count 0") == true)
        #expect(refused { $0.mode = .framed(maxPayload: 64 << 20) }?.description.contains("does not fit the receive ring") == true)
        #expect(refused { $0.memory = .memfdRegion; $0.chunkSize = 8192 }?.description.contains("4 KiB, 64 KiB or 2 MiB") == true)
        #expect(refused { $0.memory = .memfdRegion; $0.segments = 500 }?.description.contains("500 segments") == true)
        // Listening on an address in use names the address.
        let (holder, port) = try Loopback.listener()
        defer { try? holder.close() }
        let inUse = refused { $0.listen = try? SocketAddress(parsing: "127.0.0.1:\(port)") }
        #expect(inUse?.description.contains("127.0.0.1:\(port)") == true, "\(inUse.map { "\($0)" } ?? "accepted")")
        #expect(inUse?.description.contains("already in use") == true)
    }
}
