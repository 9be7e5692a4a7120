import Netmem
import NetmemDevice
import NetmemFraming
import NetmemFuzzSupport

// The frame parser fed a stream cut at places the input chooses, each piece in a chunk
// of a page pool as a receive path hands it over, with the frame being received
// collapsed into staging memory where the input says (what a receiver under memory
// pressure does).
//
// Invariants: no trap; the frames delivered are those a reading of the whole stream at
// once finds (`ExpectedStream`): same headers, payload bytes equal to the stream's bytes
// there, in order, and the connection ends with the same error (or none); statistics
// count what was delivered; a collapse moves bytes without losing any; and once the
// connection ended and the consumer let its frames go, no chunk of either pool is in
// flight and the token table holds no token.

/// The pools and tables every input uses (made once; each input must leave them as it
/// found them, which is what the leak checks check).
final class Harness {
    let provider: HostPageProvider
    let pool: PagePool
    let regions: RegionMap
    let stagingProvider: HostPageProvider
    let staging: PagePool
    let stagingRegions: RegionMap
    let tokens = TokenTable(name: "fuzz")
    /// Chunks the pool has; a piece lies at most 512 bytes into its chunk.
    static let chunkSize = 64 << 10
    static let chunks = 512

    init() {
        provider = try! HostPageProvider(chunkSize: Self.chunkSize, chunkCount: Self.chunks)
        pool = try! PagePool(PagePool.Configuration(provider: provider, poolSize: Self.chunks, name: "fuzz receive"))
        regions = try! RegionMap(hostArea: provider.area, kind: "host", keepingAlive: provider)
        stagingProvider = try! HostPageProvider(chunkSize: 4096, chunkCount: 8)
        staging = try! PagePool(PagePool.Configuration(provider: stagingProvider, poolSize: 8, name: "fuzz staging"))
        stagingRegions = try! RegionMap(hostArea: stagingProvider.area, kind: "staging", keepingAlive: stagingProvider)
    }
}

nonisolated(unsafe) let harness = Harness()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var reader = FuzzReader(data, size)
    let input = FramedInput(&reader)
    run(input)
    return 0
}

struct Delivered {
    var header: FrameHeader?
    var linear: [UInt8]
    var payload: [UInt8]
    var fragments: Int
}

func run(_ input: FramedInput) {
    let h = harness
    var parser = try! FrameParser(mode: input.raw ? .raw : .framed(maxPayload: input.maxPayload),
                                  tokens: h.tokens, regions: h.regions)
    var delivered: [Delivered] = []
    var held: [ReceivedFrame] = []
    var failure: FrameError?
    var ranDry = false
    var fed = 0
    var pieceIndex = 0

    func take(_ frame: ReceivedFrame) {
        for f in frame.fragments {
            fuzzCheck(f.regionID == h.regions.region.id || f.regionID == h.stagingRegions.region.id,
                      "\(f) names neither the receive nor the staging region")
        }
        let payload: [UInt8]
        do { payload = try frame.message.payloadBytes() } catch {
            fuzzCheck(false, "a delivered frame's payload cannot be read: \(error)")
            return
        }
        delivered.append(Delivered(header: frame.header, linear: frame.message.linear, payload: payload,
                                   fragments: frame.fragments.count))
        if input.holdFrames { held.append(frame) }
    }

    feeding: while fed < input.stream.count {
        let piece = input.pieces[pieceIndex % input.pieces.count]
        pieceIndex += 1
        let count = min(piece.size, input.stream.count - fed)
        var chunk = h.pool.allocate()
        if chunk == nil, !held.isEmpty {
            // The consumer lets its frames go when the receive memory runs out.
            held.removeAll()
            chunk = h.pool.allocate()
        }
        guard let ref = chunk else {
            // Only the frame being received holds chunks now: more pieces than the pool
            // has. A receiver ends such a connection; what it delivered stays right.
            fuzzCheck(h.pool.inFlight == parser.receiveChunksPinned,
                      "the pool ran dry with \(h.pool.inFlight) chunks out, the parser pins \(parser.receiveChunksPinned)")
            ranDry = true
            break feeding
        }
        h.pool.setFragmentReferences(of: ref, to: 1)
        let offset = (pieceIndex &* 37) % 512
        let base = h.provider.area.address(of: ref)! + offset
        input.stream[fed..<(fed + count)].withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: count) }
        let owned = h.pool.adopt(NetmemFragment(ref: ref, offset: UInt32(offset), length: UInt32(count)),
                                 baseAddress: UnsafeRawPointer(base))
        fed += count
        do throws(FrameError) {
            try parser.consume(owned) { take($0) }
        } catch {
            failure = error
            break feeding
        }
        if piece.collapse {
            let bytesBefore = parser.bytesHeld
            let pinnedBefore = parser.receiveChunksPinned
            let copied = parser.collapse(into: h.staging, regions: h.stagingRegions)
            fuzzCheck(copied >= 0 && copied <= bytesBefore, "collapse copied \(copied) of \(bytesBefore) bytes held")
            fuzzCheck(parser.bytesHeld == bytesBefore, "collapse changed the bytes held from \(bytesBefore) to \(parser.bytesHeld)")
            fuzzCheck(parser.receiveChunksPinned <= pinnedBefore,
                      "collapse pinned more receive chunks (\(pinnedBefore) → \(parser.receiveChunksPinned))")
        }
    }
    let fedAll = fed == input.stream.count && failure == nil && !ranDry
    if failure == nil {
        if ranDry || input.ending == .abort {
            parser.abort()
        } else {
            do throws(FrameError) { try parser.finish() } catch { failure = error }
        }
    }
    fuzzCheck(parser.isDone, "the connection did not end")
    fuzzCheck(parser.referencesHeld == 0 && parser.bytesHeld == 0,
              "the parser holds \(parser.referencesHeld) references (\(parser.bytesHeld) bytes) after the end")

    if input.raw {
        fuzzCheck(failure == nil, "raw mode failed: \(String(describing: failure))")
        fuzzCheck(delivered.allSatisfy { $0.header == nil && $0.linear.isEmpty && $0.fragments == 1 },
                  "raw mode delivered a frame that is not one plain fragment")
        let bytes = delivered.flatMap(\.payload)
        fuzzCheck(bytes == Array(input.stream[0..<fed]), "raw mode delivered other bytes than it was fed")
    } else {
        let expected = ExpectedStream(input.stream, maxPayload: input.maxPayload)
        // Every frame delivered is the next one the stream holds, byte for byte.
        fuzzCheck(delivered.count <= expected.frames.count,
                  "\(delivered.count) frames delivered, the stream holds \(expected.frames.count)")
        for (i, (d, e)) in zip(delivered, expected.frames).enumerated() {
            fuzzCheck(d.header == e.header, "frame \(i): header \(String(describing: d.header)), expected \(e.header)")
            fuzzCheck(d.payload == Array(input.stream[e.payload]), "frame \(i): payload differs from the stream's bytes")
            fuzzCheck(d.linear.count == FrameHeader.size && FrameHeader(decoding: d.linear) == e.header,
                      "frame \(i): linear bytes are not its header")
            fuzzCheck(d.fragments <= max(1, d.payload.count) && (d.payload.isEmpty == (d.fragments == 0)),
                      "frame \(i): \(d.fragments) fragments for \(d.payload.count) bytes")
        }
        if fedAll {
            // Everything arrived: every frame the stream holds was delivered, and the end
            // is the stream's (at a boundary, or cut inside a frame).
            fuzzCheck(delivered.count == expected.frames.count,
                      "\(delivered.count) frames delivered, the stream holds \(expected.frames.count)")
            switch (input.ending, expected.end) {
            case (.finish, _):
                fuzzCheck(failure == expected.end,
                          "the connection ended with \(String(describing: failure)), expected \(String(describing: expected.end))")
            case (.abort, nil), (.abort, .closedInHeader?), (.abort, .closedInPayload?):
                break
            case let (.abort, error?):
                fuzzCheck(false, "the stream's \(error) was not reported while it was fed")
            }
        } else if let failure {
            // It failed while feeding: the stream's error, with every frame before it delivered.
            fuzzCheck(failure == expected.end, "failed with \(failure), expected \(String(describing: expected.end))")
            fuzzCheck(delivered.count == expected.frames.count, "\(delivered.count) frames delivered before \(failure)")
        }
        let s = parser.statistics
        fuzzCheck(s.frames == delivered.count, "statistics count \(s.frames) frames, \(delivered.count) delivered")
        fuzzCheck(s.payloadBytes == delivered.reduce(0) { $0 + $1.payload.count }, "statistics payload bytes")
        fuzzCheck(s.fragments == delivered.reduce(0) { $0 + $1.fragments }, "statistics fragments")
        fuzzCheck(s.checksumsVerified == delivered.filter { $0.header!.hasPayloadCRC }.count, "statistics checksums")
        var gaps = 0
        for (a, b) in zip(delivered, delivered.dropFirst()) where b.header!.sequence != a.header!.sequence &+ 1 { gaps += 1 }
        fuzzCheck(s.sequenceGaps == gaps, "statistics count \(s.sequenceGaps) sequence gaps, the frames have \(gaps)")
        fuzzCheck(s.bytes == fed, "statistics count \(s.bytes) bytes, \(fed) fed")
    }
    // The consumer lets everything go: nothing may stay out.
    held.removeAll()
    fuzzCheck(h.tokens.heldCount == 0, "\(h.tokens.heldCount) tokens still held")
    fuzzCheck(h.pool.inFlight == 0, "\(h.pool.inFlight) receive chunks still in flight")
    fuzzCheck(h.staging.inFlight == 0, "\(h.staging.inFlight) staging chunks still in flight")
}

// Seeds: frame descriptions (checksummed, with extensions, skipped sequence numbers, a
// flipped bit, a cut frame), verbatim streams FrameWriter made, and raw mode; cut in
// several ways, some with collapses.
var seedInputs: [(name: String, bytes: [UInt8])] {
    func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    func pieces(_ sizes: [(Int, Bool)]) -> [UInt8] {
        [UInt8(sizes.count)] + sizes.flatMap { u16(($0.0 - 1) | ($0.1 ? 0x8000 : 0)) }
    }
    let header: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0] + [9, 0, 0, 0]  // sequence, stream id
    var framedStream: [UInt8] = []
    var writer = FrameWriter(streamID: 3, firstSequence: 7, checksums: true)
    for n in [0, 1, 5, 100, 1000] { framedStream += writer.encode((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 13) }) }
    writer.checksums = false
    framedStream += writer.encode([1, 2, 3])
    let maxPayload4K: UInt8 = 3 << 5
    return [
        // Built: five checksummed frames of a few sizes, one-byte pieces.
        ("built-one-byte-pieces", [maxPayload4K] + pieces([(1, false)]) + header
            + [4 | 0, 10] + Array(repeating: 0x41, count: 10) + [4 | 2] + [4 | 0, 3, 1, 2, 3] + [1, 0x00, 0x01] + [0, 0]),
        // Built: extension bytes, a sequence gap, odd piece sizes, collapses.
        ("built-extension-gap-collapse", [5 << 5 | 4] + pieces([(7, false), (33, true), (1, true), (300, false)]) + header
            + [4 | 8 | 0, 200, 40] + [4 | 16, 50] + [4 | 1, 0x00, 0x10] + [8 | 2, 8]),
        // Built: a flipped payload bit (CRC mismatch).
        ("built-crc-mismatch", [maxPayload4K] + pieces([(5, false)]) + header + [4, 3, 1, 2, 3] + [4 | 32, 8, 1, 0, 9, 9, 9, 9, 9, 9, 9, 9]),
        // Built: a corrupted magic after one good frame.
        ("built-bad-magic", [maxPayload4K] + pieces([(13, false)]) + header + [4, 2, 7, 7] + [64, 2, 0x20, 1]),
        // Built: a frame cut in its payload, aborted, frames held.
        ("built-cut-abort-held", [maxPayload4K | 8 | 4] + pieces([(3, false), (40, true)]) + header + [4, 9] + Array(repeating: 5, count: 9)
            + [4 | 128, 60, 50, 0]),
        // Built: garbage between frames, a payload above the maximum.
        ("built-garbage", [2 << 5] + pieces([]) + header + [0, 3, 1, 1, 1] + [3, 5, 0x4E, 0x4D, 0x45, 0x4D, 1] + [0, 200]),
        // Verbatim stream from FrameWriter, cut in several sizes, some collapses.
        ("verbatim-writer", [2 | 5 << 5] + pieces([(1, false), (31, true), (32, false), (33, true), (100, false)]) + framedStream),
        ("verbatim-writer-held", [2 | 4 | 5 << 5] + pieces([(500, true), (2, false)]) + framedStream),
        ("verbatim-truncated", [2 | 5 << 5] + pieces([(16, false)]) + Array(framedStream.prefix(150))),
        // Raw mode.
        ("raw", [3 | 4] + pieces([(1, false), (10, false), (1000, false)]) + Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
    ].map { (name: $0.0, bytes: $0.1) }
}

@main struct FuzzFrameParser {
    static func main() {
        FuzzMain.run("fuzz-frame-parser", seeds: { seedInputs }, test: fuzzFrameParser)
    }
}
