import Glibc
import Netmem
import NetmemDevice
import NetmemFraming
import NetmemTestSupport
import Synchronization
import Testing

/// Feeds crafted piece sequences to a parser. Each piece is a chunk of a host-page pool
/// (written just before it is fed, at a varying offset in its chunk) whose one reference
/// the parser takes over; "nothing in flight" means every chunk came back to the pool and
/// no token is out.
final class ParserHarness {
    struct Delivered {
        var header: FrameHeader?
        var linear: [UInt8]
        var payload: [UInt8]
        var fragments: Int
    }

    let provider: HostPageProvider
    let pool: PagePool
    let regions: RegionMap
    let tokens = TokenTable(name: "parser test")
    var parser: FrameParser
    var delivered: [Delivered] = []
    /// Frames the consumer still holds (when `holdFrames`).
    var held: [ReceivedFrame] = []
    var holdFrames = false
    var fed = 0

    init(mode: FrameParser.Mode, chunkSize: Int = 1 << 17, chunks: Int = 64) throws {
        provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: "parser test"))
        regions = try RegionMap(hostArea: provider.area, kind: "host", keepingAlive: provider)
        parser = try FrameParser(mode: mode, tokens: tokens, regions: regions)
    }

    var area: NetmemArea { provider.area }

    /// Writes `bytes` into a fresh chunk and feeds them as one piece.
    func feed(_ bytes: ArraySlice<UInt8>) throws(FrameError) {
        var spins = 0
        var chunk = pool.allocate()
        while chunk == nil {
            // Chunks of frames another thread holds come back through the recycle ring.
            spins += 1
            precondition(spins < 10_000_000, "the test pool ran dry: frames were never released")
            sched_yield()
            chunk = pool.allocate()
        }
        let ref = chunk!
        pool.setFragmentReferences(of: ref, to: 1)
        let offset = (fed * 37) % 512
        precondition(offset + bytes.count <= area.chunkSize, "test piece too large for its chunk")
        let base = area.address(of: ref)! + offset
        bytes.withUnsafeBytes { if $0.count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        fed += 1
        let piece = pool.adopt(NetmemFragment(ref: ref, offset: UInt32(offset), length: UInt32(bytes.count)),
                               baseAddress: UnsafeRawPointer(base))
        try parser.consume(piece) { frame in self.take(frame) }
    }

    func take(_ frame: ReceivedFrame) {
        for f in frame.fragments {
            #expect(f.regionID == regions.region.id)
            #expect(f.location.map { regions.regionOffset(of: $0) } == f.regionOffset)
        }
        let payload = (try? frame.message.payloadBytes()) ?? []
        delivered.append(Delivered(header: frame.header, linear: frame.message.linear, payload: payload,
                                   fragments: frame.fragments.count))
        if holdFrames { held.append(frame) }
    }

    /// Feeds `stream` cut at `cuts` (sorted offsets strictly inside the stream).
    func feed(_ stream: [UInt8], cuts: [Int]) throws(FrameError) {
        var start = 0
        for cut in cuts + [stream.count] where cut > start {
            try feed(stream[start..<cut])
            start = cut
        }
    }

    /// Nothing in flight: every chunk fed came back to the pool, no token is out.
    func expectNothingInFlight(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(tokens.heldCount == 0, sourceLocation: sourceLocation)
        let parserHeld = parser.referencesHeld
        #expect(parserHeld == 0, sourceLocation: sourceLocation)
        #expect(pool.inFlight == 0, "\(pool.inFlight) chunks still out", sourceLocation: sourceLocation)
    }
}

/// Builds a framed stream and remembers what it holds.
struct StreamBuilder {
    var writer = FrameWriter(streamID: 9, firstSequence: 100, checksums: true)
    var bytes: [UInt8] = []
    var payloads: [[UInt8]] = []

    mutating func add(_ payload: [UInt8], crc: Bool = true, extensionLength: Int = 0) {
        writer.checksums = crc
        let header = payload.withUnsafeBytes { writer.nextHeader(for: $0) }
        var h = header
        if extensionLength > 0 {
            h.headerLength = UInt16(FrameHeader.size + extensionLength)
            bytes += h.encoded.prefix(FrameHeader.size) + [UInt8](repeating: 0xEE, count: extensionLength)
        } else {
            bytes += h.encoded
        }
        bytes += payload
        payloads.append(payload)
    }
}

@Suite("Frame parser")
struct FrameParserTests {
    static let maxPayload = 1 << 22

    func smallStream() -> StreamBuilder {
        var b = StreamBuilder()
        b.add([])
        b.add([1, 2, 3, 4, 5])
        b.add((0..<40).map { UInt8($0) }, extensionLength: 8)
        b.add([9, 8, 7], crc: false)
        return b
    }

    func check(_ h: ParserHarness, against b: StreamBuilder, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(h.delivered.count == b.payloads.count, sourceLocation: sourceLocation)
        for (i, d) in h.delivered.enumerated() where i < b.payloads.count {
            #expect(d.payload == b.payloads[i], "frame \(i)", sourceLocation: sourceLocation)
            #expect(d.header?.sequence == 100 + UInt64(i), sourceLocation: sourceLocation)
            #expect(d.header?.streamID == 9, sourceLocation: sourceLocation)
            #expect(d.linear.count == FrameHeader.size, sourceLocation: sourceLocation)
            #expect(d.header.map { h in d.linear.withUnsafeBytes { FrameHeader(decoding: $0) } == h } == true,
                    sourceLocation: sourceLocation)
        }
    }

    @Test("Every split of a small framed stream into two pieces parses the same")
    func everyTwoWaySplit() throws {
        let b = smallStream()
        for cut in 0...b.bytes.count {
            let h = try ParserHarness(mode: .framed(maxPayload: Self.maxPayload))
            try h.feed(b.bytes, cuts: [cut])
            try h.parser.finish()
            check(h, against: b)
            h.expectNothingInFlight()
        }
    }

    @Test("Every fixed piece size from 1 byte to the whole stream parses the same")
    func everyPieceSize() throws {
        let b = smallStream()
        for size in 1...b.bytes.count {
            let h = try ParserHarness(mode: .framed(maxPayload: Self.maxPayload))
            try h.feed(b.bytes, cuts: Array(stride(from: size, to: b.bytes.count, by: size)))
            try h.parser.finish()
            check(h, against: b)
            h.expectNothingInFlight()
            // A payload split over k pieces arrives as k fragments.
            if size == 1 { #expect(h.delivered[1].fragments == 5) }
        }
    }

    @Test("Random frames with random cuts arrive byte-exact; held frames keep their chunks")
    func randomFrames() throws {
        var rng = SplitMix64(seed: 42)
        for round in 0..<20 {
            var b = StreamBuilder()
            for _ in 0..<Int(rng.next() % 20 + 1) {
                let size = Int(rng.next() % 3 == 0 ? rng.next() % 70_000 : rng.next() % 300)
                b.add(rng.bytes(size), crc: rng.next() % 4 != 0, extensionLength: rng.next() % 5 == 0 ? Int(rng.next() % 100) : 0)
            }
            var cuts: [Int] = []
            var at = 0
            while true {
                at += Int(rng.next() % 65_536) + 1
                if at >= b.bytes.count { break }
                cuts.append(at)
            }
            let h = try ParserHarness(mode: .framed(maxPayload: Self.maxPayload), chunks: 256)
            h.holdFrames = round % 2 == 0
            try h.feed(b.bytes, cuts: cuts)
            try h.parser.finish()
            check(h, against: b)
            if h.holdFrames {
                // The consumer holds every frame: their tokens and chunks stay out until then.
                #expect(h.tokens.heldCount == h.delivered.reduce(0) { $0 + $1.fragments })
                h.held.removeAll()
            }
            h.expectNothingInFlight()
        }
    }

    @Test("Raw mode: every piece becomes one fragment, bytes unchanged")
    func rawMode() throws {
        var rng = SplitMix64(seed: 7)
        let stream = rng.bytes(100_000)
        let h = try ParserHarness(mode: .raw)
        h.holdFrames = true
        try h.feed(stream, cuts: [1, 2, 1000, 50_000, 99_999])
        try h.parser.finish()
        #expect(h.delivered.count == 6)
        #expect(h.delivered.allSatisfy { $0.header == nil && $0.linear.isEmpty && $0.fragments == 1 })
        #expect(h.delivered.flatMap(\.payload) == stream)
        #expect(h.pool.inFlight == 6)
        #expect(h.tokens.heldCount == 6)
        h.held.removeAll()
        h.expectNothingInFlight()
    }

    /// Feeds a good frame, then `bad`, and expects `error`; what was delivered before
    /// stays valid, and everything comes back.
    func expectFailure(_ bad: [UInt8], max: Int = maxPayload, piece: Int = 7, _ error: FrameError,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        var b = StreamBuilder()
        b.add([1, 2, 3])
        let stream = b.bytes + bad
        let h = try ParserHarness(mode: .framed(maxPayload: max))
        h.holdFrames = true
        #expect(throws: error, sourceLocation: sourceLocation) {
            try h.feed(stream, cuts: Array(stride(from: piece, to: stream.count, by: piece)))
            try h.parser.finish()
        }
        let done = h.parser.isDone
        #expect(done, sourceLocation: sourceLocation)
        let held = h.parser.referencesHeld
        #expect(held == 0, sourceLocation: sourceLocation)
        #expect(h.delivered.count == 1 && h.delivered[0].payload == [1, 2, 3], sourceLocation: sourceLocation)
        // A piece fed after the failure comes straight back, with the same error.
        #expect(throws: error, sourceLocation: sourceLocation) { try h.feed([0, 0, 0][...]) }
        h.held.removeAll()
        h.expectNothingInFlight(sourceLocation: sourceLocation)
    }

    @Test("Bad headers end the connection with an error naming the field")
    func badHeaders() throws {
        func header(_ mutate: (inout FrameHeader) -> Void) -> [UInt8] {
            var h = FrameHeader(sequence: 1, payloadLength: 10, crc: 0)
            mutate(&h)
            return h.encoded.prefix(32) + [UInt8](repeating: 0, count: 10)
        }
        try expectFailure(header { $0.magic = 0x4141_4141 }, .badMagic(0x4141_4141))
        try expectFailure(header { $0.version = 9 }, .badVersion(9))
        try expectFailure(header { $0.headerLength = 16 }, .headerLengthTooSmall(16))
        try expectFailure(header { $0.headerLength = 5000 }, .headerLengthTooLarge(5000))
        try expectFailure(header { $0.payloadLength = 1001 }, max: 1000, .payloadTooLarge(1001, maximum: 1000))
        // Unframed text where a header should be.
        try expectFailure(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n.....".utf8), piece: 1000,
                          .badMagic(UInt32(littleEndian: 0x2054_4547)))
    }

    @Test("A payload that fails its CRC-32C ends the connection")
    func checksumMismatch() throws {
        var w = FrameWriter(firstSequence: 5)
        var frame = w.encode([10, 20, 30, 40])
        frame[frame.count - 1] ^= 0xFF
        let good = CRC32C.checksum([10, 20, 30, 40])
        let bad = CRC32C.checksum([10, 20, 30, 40 ^ 0xFF])
        try expectFailure(frame, piece: 3, .checksumMismatch(sequence: 5, expected: good, computed: bad))
    }

    @Test("A peer closing mid-frame gives a typed error saying where")
    func closedMidFrame() throws {
        var w = FrameWriter(firstSequence: 0)
        let frame = w.encode([UInt8](repeating: 0xAB, count: 100))
        try expectFailure(Array(frame[..<12]), .closedInHeader(received: 12, expected: 32))
        try expectFailure(Array(frame[..<50]), .closedInPayload(received: 18, expected: 100))
        var ext = FrameHeader(sequence: 0, payloadLength: 0)
        ext.headerLength = 64
        try expectFailure(Array(ext.encoded[..<32]) + [0, 0, 0], .closedInHeader(received: 35, expected: 64))
        #expect(FrameError.closedInHeader(received: 12, expected: 32).description
            == "connection closed 12 bytes into a 32-byte header")
    }

    @Test("Aborting mid-payload drops every reference the parser held")
    func abortDropsReferences() throws {
        var w = FrameWriter(firstSequence: 0)
        let frame = w.encode([UInt8](repeating: 1, count: 1000))
        let h = try ParserHarness(mode: .framed(maxPayload: 4096))
        try h.feed(Array(frame[..<700]), cuts: [20, 100, 300, 600])
        let held = h.parser.referencesHeld
        #expect(held == 4)
        // The first piece held only header bytes: its chunk is back already.
        #expect(h.pool.inFlight == 4)
        h.parser.abort()
        h.expectNothingInFlight()
        #expect(h.delivered.isEmpty)
    }

    @Test("Sequence numbers that skip are counted, the frames still delivered")
    func sequenceGaps() throws {
        var w = FrameWriter(firstSequence: 10)
        var stream = w.encode([1]) + w.encode([2])
        w.nextSequence = 20
        stream += w.encode([3]) + w.encode([4])
        let h = try ParserHarness(mode: .framed(maxPayload: 100))
        try h.feed(stream, cuts: [])
        try h.parser.finish()
        #expect(h.delivered.map(\.payload) == [[1], [2], [3], [4]])
        #expect(h.parser.statistics.sequenceGaps == 1)
        h.expectNothingInFlight()
    }

    @Test("Configuration that cannot work throws at init, not at the first data")
    func badConfiguration() throws {
        let h = try ParserHarness(mode: .raw)
        #expect(throws: FrameError.self) { _ = try FrameParser(mode: .framed(maxPayload: -1), tokens: h.tokens, regions: h.regions) }
        let deviceOnly = try DeviceMemoryRegion.memfd(size: 1 << 20, access: .none)
        let binding = try DevmemBinding(region: deviceOnly, queues: [ReceiveQueue(interface: "test", index: 0)],
                                        chunkSize: 65536, registry: BindingRegistry())
        #expect(throws: FrameError.self) { _ = try FrameParser(mode: .framed(maxPayload: 100), tokens: h.tokens, regions: binding.regionMap) }
        // Raw mode over unreadable memory is fine: nothing is read.
        _ = try FrameParser(mode: .raw, tokens: h.tokens, regions: binding.regionMap)
    }
}

@Suite("Frame parser: early rejection")
struct FrameEarlyRejectTests {
    @Test("A bad magic is reported as soon as 4 bytes arrived, even if the peer then closes")
    func earlyMagic() throws {
        let h = try ParserHarness(mode: .framed(maxPayload: 1 << 20))
        let text = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        #expect(throws: FrameError.badMagic(UInt32(littleEndian: 0x2054_4547))) { try h.feed(text[...]) }
        h.expectNothingInFlight()
        // A valid prefix is accepted and then reported as closed mid-header.
        var w = FrameWriter()
        let frame = w.encode([1, 2, 3])
        let h2 = try ParserHarness(mode: .framed(maxPayload: 1 << 20))
        try h2.feed(frame[..<20])
        #expect(throws: FrameError.closedInHeader(received: 20, expected: 32)) { try h2.parser.finish() }
        h2.expectNothingInFlight()
    }
}

@Suite("Frames released on another thread")
struct FrameReleaseThreadTests {
    @Test("Frames let go on another thread while pieces keep coming: every chunk comes back once")
    func releasesFromAnotherThread() throws {
        let h = try ParserHarness(mode: .raw, chunkSize: 4096, chunks: 64)
        h.holdFrames = true
        let queue = Mutex<[ReceivedFrame]>([])
        let done = Atomic<Bool>(false)
        let releaser = TestThread {
            var idle = 0
            while idle < 2_000_000 {
                let batch = queue.withLockChecked { q -> [ReceivedFrame] in
                    let b = q
                    q.removeAll()
                    return b
                }
                if batch.isEmpty {
                    if done.load(ordering: .acquiring) { break }
                    idle += 1
                    sched_yield()
                    continue
                }
                _ = consume batch
            }
        }
        var rng = SplitMix64(seed: 3)
        for i in 0..<5000 {
            try h.feed(rng.bytes(Int(rng.next() % 100) + 1)[...])
            let handed = h.held
            h.held.removeAll()
            queue.withLockChecked { $0 += handed }
            if i % 512 == 0 { sched_yield() }
        }
        done.store(true, ordering: .releasing)
        releaser.join()
        h.expectNothingInFlight()
    }
}
