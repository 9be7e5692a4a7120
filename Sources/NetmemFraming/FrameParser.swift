import Netmem
import NetmemDevice

/// A streaming parser for one connection, fed with received pieces in stream order. It
/// copies headers (which may straddle pieces) into host memory and describes payload as
/// fragments without copying; a payload that straddles pieces gets several fragments.
/// CRC-32C is verified incrementally when a frame's flag asks for it, and sequence
/// numbers are checked to count up by one.
///
/// References: a piece passed to `consume` belongs to the parser. A piece holding no
/// payload goes back at once; payload pieces are held for the frame being received and
/// then move into tokens of `tokens`, owned by the delivered frame's `Message`. On an
/// error, or `abort()`, the references held for a half-received frame are dropped at
/// once; frames already delivered stay valid.
public struct FrameParser: ~Copyable {
    /// How the bytes of the connection are read.
    public enum Mode: Sendable, Equatable {
        /// Frames in the Netmem frame format, with payloads of at most `maxPayload` bytes.
        case framed(maxPayload: Int)
        /// Unframed bytes: every piece becomes one message of one fragment.
        case raw
    }

    /// Counters of one connection.
    public struct Statistics: Sendable, Equatable {
        /// Pieces consumed, empty ones included.
        public var segments = 0
        /// Bytes consumed, headers included.
        public var bytes = 0
        /// Frames delivered (in raw mode, one per non-empty piece).
        public var frames = 0
        /// Payload bytes delivered.
        public var payloadBytes = 0
        /// Payload fragments delivered.
        public var fragments = 0
        /// Frames whose CRC-32C was checked and matched.
        public var checksumsVerified = 0
        /// Frames whose sequence number was not the previous one plus one.
        public var sequenceGaps = 0
        /// Times the bytes of the frame being received were copied into staging memory
        /// (`collapse`), and how many bytes were copied.
        public var collapses = 0
        /// Bytes copied by those collapses.
        public var bytesStaged = 0
        /// Counters all at zero.
        public init() {}
    }

    enum State {
        /// Collecting the fixed header: `filled` bytes so far.
        case header(filled: Int)
        /// Skipping `remaining` extension bytes of a header already decoded.
        case extensionBytes(remaining: Int)
        /// Collecting `remaining` payload bytes of the current frame.
        case payload(remaining: Int)
        case failed(FrameError)
        case finished
    }

    /// How the connection's bytes are read: framed or raw.
    public let mode: Mode
    /// Where delivered fragments' tokens are issued.
    public let tokens: TokenTable
    /// The region coordinates of the pools' chunks.
    public let regions: RegionMap
    public internal(set) var statistics = Statistics()

    var state: State = .header(filled: 0)
    var headerBytes: [UInt8]
    var current: FrameHeader?
    var crc: UInt32 = 0
    var expectedSequence: UInt64?
    /// A payload piece of the frame being received, holding one chunk reference in
    /// `pool`; `staged` when it lies in staging memory (`collapse`).
    struct Held {
        var location: NetmemFragment
        var pool: PagePool
        var staged: Bool
    }
    var pending: [Held] = []
    var pendingBytes = 0
    /// Where staged pieces lie, once something was staged.
    var stagingRegions: RegionMap?

    /// A parser for one connection.
    ///
    /// - Parameters:
    ///   - mode: Framed (with the largest payload accepted) or raw.
    ///   - tokens: The table that issues the delivered fragments' tokens.
    ///   - regions: Where the pieces' chunks lie in their region.
    /// - Throws: `FrameError.invalidConfiguration` for a negative or too large maximum
    ///   payload, or framed mode over a region the CPU cannot read (headers must be read).
    public init(mode: Mode, tokens: TokenTable, regions: RegionMap) throws(FrameError) {
        if case let .framed(maxPayload) = mode {
            guard maxPayload >= 0, maxPayload <= Int(UInt32.max) else {
                throw .invalidConfiguration("maximum payload \(maxPayload) must be 0 to \(UInt32.max) bytes")
            }
            guard regions.region.access == .mapped else {
                throw .invalidConfiguration("framed receive reads headers where they land, and region \(regions.region.id) is not readable by the CPU; use raw mode")
            }
        }
        self.mode = mode
        self.tokens = tokens
        self.regions = regions
        headerBytes = [UInt8](repeating: 0, count: FrameHeader.size)
    }

    deinit {
        // A parser dropped without `finish()`/`abort()` still returns what it held.
        for h in pending { h.pool.releaseFragment(h.location) }
    }

    /// Whether the connection ended (error or finished).
    public var isDone: Bool {
        switch state {
        case .failed, .finished: return true
        default: return false
        }
    }

    /// Whether the parser is between frames (nothing of a next frame received yet).
    public var isAtFrameBoundary: Bool {
        switch state {
        case let .header(filled): return filled == 0
        case .finished: return true
        default: return false
        }
    }

    /// Chunk references held for the frame being received.
    public var referencesHeld: Int { pending.count }
    /// Payload bytes held for the frame being received.
    public var bytesHeld: Int { pendingBytes }
    /// Receive chunks (not staging) the frame being received keeps from recycling.
    public var receiveChunksPinned: Int {
        var n = 0
        var last: NetmemRef?
        for h in pending where !h.staged {
            if h.location.ref != last { n += 1 }
            last = h.location.ref
        }
        return n
    }
    /// The payload length of the frame being received, once its header is in (nil
    /// between frames and while a header is incomplete).
    public var payloadLengthInProgress: Int? {
        switch state {
        case .payload, .extensionBytes: return current.map { Int($0.payloadLength) }
        default: return nil
        }
    }

    /// The bytes still to come before the parser next has something to decide: the rest
    /// of the header being received, or the rest of the frame whose header is in (nil in
    /// raw mode and once the connection ended). A reader that reads no more than this
    /// never receives bytes of a frame whose header it has not seen.
    public var bytesToNextBoundary: Int? {
        guard case .framed = mode else { return nil }
        switch state {
        case let .header(filled): return FrameHeader.size - filled
        case let .extensionBytes(remaining): return remaining + Int(current?.payloadLength ?? 0)
        case let .payload(remaining): return remaining
        case .failed, .finished: return nil
        }
    }

    /// Parses one piece and calls `deliver` for each frame it completes. The piece is the
    /// parser's from now on (also when this throws). Throws when the input is bad; the
    /// parser has then dropped every reference it held, and stays failed.
    public mutating func consume(_ piece: consuming PoolFragment, deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        if case let .failed(error) = state { throw error }
        precondition(!isFinished, "data fed to a parser after the connection finished")
        statistics.segments += 1
        statistics.bytes += piece.count
        guard piece.count > 0 else { return }
        switch mode {
        case .raw:
            let fragment = tokens.issue(piece, regions: regions)
            statistics.fragments += 1
            statistics.frames += 1
            statistics.payloadBytes += fragment.length
            deliver(ReceivedFrame(header: nil, message: Message(fragments: [fragment], region: regions.region,
                                                                 returningTokensTo: tokens)))
        case let .framed(maxPayload):
            // Every payload piece kept takes a reference of its own; this piece's reference
            // drops when it goes away at the end of this call. (Handing it to a piece
            // instead would let a consumer that releases that frame at once recycle the
            // chunk while the rest of it is still being parsed.)
            do throws(FrameError) {
                try consumeFramed(piece, maxPayload: maxPayload, deliver: deliver)
            } catch {
                fail(error)
                throw error
            }
        }
    }

    /// The peer closed the connection. Throws when it closed in the middle of a frame
    /// (and drops the half frame's references).
    public mutating func finish() throws(FrameError) {
        switch state {
        case let .failed(error):
            throw error
        case .finished:
            return
        case let .header(filled) where filled == 0:
            state = .finished
        case let .header(filled):
            let error = FrameError.closedInHeader(received: filled, expected: FrameHeader.size)
            fail(error)
            throw error
        case let .extensionBytes(remaining):
            let expected = Int(current?.headerLength ?? UInt16(FrameHeader.size))
            let error = FrameError.closedInHeader(received: expected - remaining, expected: expected)
            fail(error)
            throw error
        case let .payload(remaining):
            let expected = Int(current?.payloadLength ?? 0)
            let error = FrameError.closedInPayload(received: expected - remaining, expected: expected)
            fail(error)
            throw error
        }
    }

    /// Ends the connection with `error` (a reset, a local shutdown): drops every
    /// reference held for a half-received frame.
    public mutating func fail(_ error: FrameError) {
        dropPending()
        current = nil
        state = .failed(error)
    }

    /// Ends the connection locally; the half-received frame, if any, is dropped.
    public mutating func abort() {
        if case .failed = state { return }
        fail(.aborted)
    }

    var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    mutating func dropPending() {
        for h in pending { h.pool.releaseFragment(h.location) }
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
    }

    // MARK: - Framed mode

    private mutating func consumeFramed(_ piece: borrowing PoolFragment, maxPayload: Int,
                                        deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        let count = piece.count
        guard let bytes = piece.baseAddress else {
            preconditionFailure("\(piece.fragment) is not readable, but the parser's region \(regions.region.id) is")
        }
        var position = 0
        while position < count {
            switch state {
            case let .header(filled):
                let take = min(FrameHeader.size - filled, count - position)
                headerBytes.withUnsafeMutableBytes { dst in
                    (dst.baseAddress! + filled).copyMemory(from: bytes + position, byteCount: take)
                }
                position += take
                if filled + take < FrameHeader.size {
                    // Reject a bad prefix at once (an unframed sender is told "wrong magic"
                    // even when it sends fewer than 32 bytes and closes).
                    let prefix: Result<Void, FrameError> = headerBytes.withUnsafeBytes { b in
                        Result { () throws(FrameError) in
                            try FrameHeader.validatePrefix(UnsafeRawBufferPointer(rebasing: b[..<(filled + take)]), maxPayload: maxPayload)
                        }
                    }
                    try prefix.get()
                    state = .header(filled: filled + take)
                    continue
                }
                let header = headerBytes.withUnsafeBytes { FrameHeader(decoding: $0) }
                try header.validate(maxPayload: maxPayload)
                current = header
                crc = 0
                let extra = Int(header.headerLength) - FrameHeader.size
                if extra > 0 {
                    state = .extensionBytes(remaining: extra)
                } else {
                    try beginPayload(header, deliver: deliver)
                }
            case let .extensionBytes(remaining):
                let take = min(remaining, count - position)
                position += take
                if take < remaining {
                    state = .extensionBytes(remaining: remaining - take)
                } else {
                    try beginPayload(current!, deliver: deliver)
                }
            case let .payload(remaining):
                let take = min(remaining, count - position)
                let location = NetmemFragment(ref: piece.fragment.ref, offset: piece.fragment.offset + UInt32(position),
                                              length: UInt32(take))
                let pool = piece.pool
                pool.retainFragment(location)
                pending.append(Held(location: location, pool: pool, staged: false))
                pendingBytes += take
                if current!.hasPayloadCRC {
                    crc = CRC32C.checksum(UnsafeRawBufferPointer(start: bytes + position, count: take), continuing: crc)
                }
                position += take
                if take < remaining {
                    state = .payload(remaining: remaining - take)
                } else {
                    try completeFrame(deliver: deliver)
                }
            case .failed, .finished:
                preconditionFailure("parser state \(state) inside consume")
            }
        }
    }

    private mutating func beginPayload(_ header: FrameHeader, deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        if header.payloadLength == 0 {
            try completeFrame(deliver: deliver)
        } else {
            state = .payload(remaining: Int(header.payloadLength))
        }
    }

    private mutating func completeFrame(deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        let header = current!
        if header.hasPayloadCRC {
            guard crc == header.payloadCRC32C else {
                throw .checksumMismatch(sequence: header.sequence, expected: header.payloadCRC32C, computed: crc)
            }
            statistics.checksumsVerified += 1
        }
        if let expected = expectedSequence, header.sequence != expected { statistics.sequenceGaps += 1 }
        expectedSequence = header.sequence &+ 1
        var fragments: [Fragment] = []
        var staged = false
        if !pending.isEmpty {
            fragments.reserveCapacity(pending.count)
            if let first = pending.first, pending.allSatisfy({ !$0.staged && $0.pool === first.pool }) {
                tokens.issue(pending.map(\.location), owner: first.pool, regions: regions, into: &fragments)
            } else {
                staged = true
                for h in pending {
                    fragments.append(tokens.issue(h.location, owner: h.pool, regions: h.staged ? stagingRegions! : regions))
                }
            }
        }
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        statistics.frames += 1
        statistics.payloadBytes += Int(header.payloadLength)
        statistics.fragments += fragments.count
        current = nil
        state = .header(filled: 0)
        let message: Message
        if fragments.isEmpty {
            message = Message(linear: headerBytes)
        } else if staged, let stagingRegions {
            message = Message(linear: headerBytes, fragments: fragments, regions: [regions.region, stagingRegions.region],
                              returningTokensTo: tokens)
        } else {
            message = Message(linear: headerBytes, fragments: fragments, region: regions.region, returningTokensTo: tokens)
        }
        deliver(ReceivedFrame(header: header, message: message))
    }
}
