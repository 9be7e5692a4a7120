import Glibc
import Netmem
import NetmemDevice
@testable import NetmemURing
import Synchronization
import Testing

/// Feeds crafted segment sequences to a parser. Segments lie in a host-page area (each
/// written just before it is fed, at a varying offset in its chunk); the ledger's release
/// records which segments came back.
final class ParserHarness {
    struct Delivered {
        var header: FrameHeader?
        var linear: [UInt8]
        var payload: [UInt8]
        var fragments: Int
    }

    let provider: HostPageProvider
    final class ReleaseLog: Sendable {
        let ids = Mutex<[Int]>([])
    }
    let released = ReleaseLog()
    let ledger: SegmentLedger<Int>
    var parser: FrameParser<Int>
    var delivered: [Delivered] = []
    /// Messages whose tokens the consumer still holds (when `holdTokens`).
    var held: [Message] = []
    var holdTokens = false
    var fed = 0
    var nextChunk = 0

    init(mode: FrameParser<Int>.Mode, chunkSize: Int = 1 << 17, chunks: Int = 64) throws {
        provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        let released = self.released
        ledger = SegmentLedger { id in released.ids.withLockChecked { $0.append(id) } }
        parser = FrameParser(mode: mode, ledger: ledger)
    }

    var area: NetmemArea { provider.area }

    /// Writes `bytes` into the next chunk and feeds them as one segment.
    func feed(_ bytes: ArraySlice<UInt8>) throws(FrameError) {
        let chunk = nextChunk % area.chunkCount
        nextChunk += 1
        let offset = (chunk * 37) % 512
        precondition(offset + bytes.count <= area.chunkSize, "test segment too large for its chunk")
        let ref = area.ref(chunk: chunk)
        let base = area.address(of: ref)! + offset
        bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let location = NetmemFragment(ref: ref, offset: UInt32(offset), length: UInt32(bytes.count))
        let id = fed
        fed += 1
        try parser.consume(FrameParser<Int>.Segment(id, location: location, bytes: UnsafeRawPointer(base))) { frame in
            self.take(frame)
        }
    }

    func take(_ frame: ReceivedFrame) {
        var payload: [UInt8] = []
        for f in frame.message.fragments {
            let loc = f.location!
            #expect(Int(loc.length) == f.length)
            #expect(f.regionID == UInt32(area.id))
            #expect(f.regionOffset == UInt64(loc.ref.chunk) * UInt64(area.chunkSize) + UInt64(loc.offset))
            let p = area.address(of: loc.ref)! + Int(loc.offset)
            payload += UnsafeRawBufferPointer(start: p, count: f.length)
        }
        delivered.append(Delivered(header: frame.header, linear: frame.message.linear, payload: payload,
                                   fragments: frame.message.fragments.count))
        if holdTokens {
            held.append(frame.message)
        } else {
            #expect(throws: Never.self) { try self.ledger.dontNeed(frame.message) }
        }
    }

    /// Feeds `stream` cut at `cuts` (sorted offsets strictly inside the stream).
    func feed(_ stream: [UInt8], cuts: [Int]) throws(FrameError) {
        var start = 0
        for cut in cuts + [stream.count] where cut > start {
            try feed(stream[start..<cut])
            start = cut
        }
    }

    func returnHeld() throws {
        for m in held { try ledger.dontNeed(m) }
        held.removeAll()
    }

    /// Nothing in flight: every segment fed came back exactly once, no token is out.
    func expectNothingInFlight(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(ledger.segmentsHeld == 0, sourceLocation: sourceLocation)
        #expect(ledger.tokensOutstanding == 0, sourceLocation: sourceLocation)
        let parserHeld = parser.referencesHeld
        #expect(parserHeld == 0, sourceLocation: sourceLocation)
        let back = released.ids.withLockChecked { $0 }
        #expect(back.count == fed, "\(back.count) of \(fed) segments came back", sourceLocation: sourceLocation)
        #expect(Set(back).count == back.count, "a segment came back twice", sourceLocation: sourceLocation)
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
struct FramingParserTests {
    static let maxPayload = 1 << 22

    func smallStream() -> StreamBuilder {
        var b = StreamBuilder()
        b.add([])
        b.add([1, 2, 3, 4, 5])
        b.add((0..<40).map { UInt8($0) }, extensionLength: 8)
        b.add([9, 8, 7], crc: false)
        return b
    }

    func check(_ h: ParserHarness, against b: StreamBuilder) {
        #expect(h.delivered.count == b.payloads.count)
        for (i, d) in h.delivered.enumerated() where i < b.payloads.count {
            #expect(d.payload == b.payloads[i], "frame \(i)")
            #expect(d.header?.sequence == 100 + UInt64(i))
            #expect(d.header?.streamID == 9)
            #expect(d.linear.count == FrameHeader.size)
            #expect(d.header.map { FrameHeader(decoding: d.linear) == $0 } == true)
        }
    }

    @Test("Every split of a small framed stream into two segments parses the same")
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

    @Test("Every fixed segment size from 1 byte to the whole stream parses the same")
    func everySegmentSize() throws {
        let b = smallStream()
        for size in 1...b.bytes.count {
            let h = try ParserHarness(mode: .framed(maxPayload: Self.maxPayload))
            try h.feed(b.bytes, cuts: Array(stride(from: size, to: b.bytes.count, by: size)))
            try h.parser.finish()
            check(h, against: b)
            h.expectNothingInFlight()
            // A payload split over k segments arrives as k fragments.
            if size == 1 { #expect(h.delivered[1].fragments == 5) }
        }
    }

    @Test("Random frames with random segment cuts arrive byte-exact")
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
            let h = try ParserHarness(mode: .framed(maxPayload: Self.maxPayload))
            h.holdTokens = round % 2 == 0
            try h.feed(b.bytes, cuts: cuts)
            try h.parser.finish()
            check(h, against: b)
            if h.holdTokens {
                // The consumer holds every token: payload segments stay out until returned.
                #expect(h.ledger.tokensOutstanding == h.delivered.reduce(0) { $0 + $1.fragments })
                try h.returnHeld()
            }
            h.expectNothingInFlight()
        }
    }

    @Test("Raw mode: every segment becomes one fragment, bytes unchanged")
    func rawMode() throws {
        var rng = SplitMix64(seed: 7)
        let stream = rng.bytes(100_000)
        let h = try ParserHarness(mode: .raw)
        h.holdTokens = true
        try h.feed(stream, cuts: [1, 2, 1000, 50_000, 99_999])
        try h.parser.finish()
        #expect(h.delivered.count == 6)
        #expect(h.delivered.allSatisfy { $0.header == nil && $0.linear.isEmpty && $0.fragments == 1 })
        #expect(h.delivered.flatMap(\.payload) == stream)
        #expect(h.ledger.segmentsHeld == 6)
        try h.returnHeld()
        h.expectNothingInFlight()
    }

    /// Feeds `good` frames, then `bad`, and expects `error`; whatever was delivered before
    /// stays valid, and everything comes back.
    func expectFailure(_ bad: [UInt8], max: Int = maxPayload, segment: Int = 7, _ error: FrameError) throws {
        var b = StreamBuilder()
        b.add([1, 2, 3])
        let stream = b.bytes + bad
        let h = try ParserHarness(mode: .framed(maxPayload: max))
        h.holdTokens = true
        #expect(throws: error) {
            try h.feed(stream, cuts: Array(stride(from: segment, to: stream.count, by: segment)))
            try h.parser.finish()
        }
        let done = h.parser.isDone
        #expect(done)
        let held = h.parser.referencesHeld
        #expect(held == 0)
        #expect(h.delivered.count == 1 && h.delivered[0].payload == [1, 2, 3])
        // A segment fed after the failure comes straight back, with the same error.
        #expect(throws: error) { try h.feed([0, 0, 0][...]) }
        try h.returnHeld()
        h.expectNothingInFlight()
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
        try expectFailure(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n.....".utf8), segment: 1000,
                          .badMagic(UInt32(littleEndian: 0x2054_4547)))
    }

    @Test("A payload that fails its CRC-32C ends the connection")
    func checksumMismatch() throws {
        var w = FrameWriter(firstSequence: 5)
        var frame = w.encode([10, 20, 30, 40])
        frame[frame.count - 1] ^= 0xFF
        let good = CRC32C.checksum([10, 20, 30, 40])
        let bad = CRC32C.checksum([10, 20, 30, 40 ^ 0xFF])
        try expectFailure(frame, segment: 3, .checksumMismatch(sequence: 5, expected: good, computed: bad))
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
        #expect(h.ledger.segmentsHeld == 4)
        #expect(h.released.ids.withLockChecked { $0 } == [0])
        h.parser.abort()
        h.expectNothingInFlight()
        #expect(h.delivered.isEmpty)
    }

    @Test("Tokens are checked: unknown, returned twice, too many at once")
    func tokenChecks() throws {
        let h = try ParserHarness(mode: .raw)
        h.holdTokens = true
        try h.feed([1, 2, 3][...])
        let token = h.held[0].fragments[0].token
        #expect(throws: TokenError.unknownToken(999, freedBefore: 0)) { try h.ledger.dontNeed([TokenRange(token: 999)]) }
        #expect(try h.ledger.dontNeed([TokenRange(token: token)]) == 1)
        #expect(throws: TokenError.alreadyReturned(token, freedBefore: 0)) { try h.ledger.dontNeed([TokenRange(token: token)]) }
        #expect(throws: TokenError.tooManyFragments(2000)) { try h.ledger.dontNeed([TokenRange(start: 0, count: 2000)]) }
        h.held.removeAll()
        h.expectNothingInFlight()
    }
}

@Suite("Frame parser: early rejection")
struct FramingEarlyRejectTests {
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

@Suite("Segment ledger across threads")
struct FramingLedgerThreadTests {
    @Test("Tokens returned from another thread while segments keep coming: each segment comes back once")
    func returnsFromAnotherThread() throws {
        let h = try ParserHarness(mode: .raw, chunkSize: 4096, chunks: 64)
        h.holdTokens = true
        let queue = Mutex<[Message]>([])
        let done = Atomic<Bool>(false)
        let ledger = h.ledger
        let returner = FramingThread {
            var idle = 0
            while idle < 2_000_000 {
                let batch = queue.withLockChecked { q -> [Message] in
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
                for m in batch { _ = try? ledger.dontNeed(m) }
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
        returner.join()
        h.expectNothingInFlight()
    }
}
