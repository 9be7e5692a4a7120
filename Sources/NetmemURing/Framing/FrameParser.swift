import Netmem
import NetmemDevice

/// One frame (or, in raw mode, one run of received bytes) handed to the consumer: the
/// header copied into host memory and the payload as fragments where it landed.
public struct ReceivedFrame: Sendable {
    /// The decoded header; nil in raw mode.
    public var header: FrameHeader?
    /// `linear` holds the 32 header bytes (empty in raw mode); `fragments` the payload in
    /// order, each with the token that returns it to the ledger.
    public var message: Message

    public init(header: FrameHeader?, message: Message) {
        self.header = header
        self.message = message
    }
}

/// A streaming parser for one connection, fed with received segments in order. It copies
/// headers (which may straddle segments) into host memory and describes payload as
/// fragments without copying; a payload that straddles segments gets several fragments.
/// CRC-32C is verified incrementally when a frame's flag asks for it.
///
/// References: a segment passed to `consume` belongs to the parser from then on. It goes
/// back through the ledger's release when no payload lies in it, or once every token for
/// a piece of it has been returned. On an error, or `abort()`, every reference the parser
/// held is dropped at once; tokens already given to the consumer stay valid.
public struct FrameParser<Item: Sendable>: ~Copyable {
    /// How the bytes of the connection are read.
    public enum Mode: Sendable, Equatable {
        /// Frames in the Netmem frame format.
        case framed(maxPayload: Int)
        /// Unframed bytes: every segment becomes one fragment.
        case raw
    }

    /// One piece of received bytes: where it lies in pool memory, and its CPU address
    /// when the CPU may read it (nil for device memory: headers must then be readable
    /// by other means and CRC cannot be checked).
    public struct Segment {
        /// What goes back to the ledger's release when the parser and the consumer are
        /// done with the bytes (a `ReceivedSegment`, a chunk reference, …).
        public var item: Item
        public var location: NetmemFragment
        public var bytes: UnsafeRawPointer?
        public init(_ item: Item, location: NetmemFragment, bytes: UnsafeRawPointer?) {
            self.item = item
            self.location = location
            self.bytes = bytes
        }
        public var count: Int { Int(location.length) }
    }

    /// Counters of one connection.
    public struct Statistics: Sendable, Equatable {
        public var segments = 0
        public var bytes = 0
        public var frames = 0
        public var payloadBytes = 0
        public var fragments = 0
        /// Frames whose CRC-32C was checked and matched.
        public var checksumsVerified = 0
        /// Frames that asked for a CRC that could not be checked (payload not readable).
        public var checksumsUnverifiable = 0
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

    public let mode: Mode
    public let ledger: SegmentLedger<Item>
    public private(set) var statistics = Statistics()

    private var state: State = .header(filled: 0)
    private var headerBytes: [UInt8]
    private var current: FrameHeader?
    private var crc: UInt32 = 0
    private var crcCheckable = true
    /// Payload pieces of the frame being received, each holding a ledger reference.
    private var pendingHandles: [SegmentLedger<Item>.Handle] = []
    private var pendingFragments: [Fragment] = []
    /// Cached chunk size of the last area seen (a registry lookup takes a lock).
    private var cachedAreaID: UInt16 = 0
    private var cachedChunkSize: UInt64 = 0

    public init(mode: Mode, ledger: SegmentLedger<Item>) {
        if case let .framed(maxPayload) = mode {
            precondition(maxPayload >= 0, "maximum payload must not be negative")
        }
        self.mode = mode
        self.ledger = ledger
        self.headerBytes = [UInt8](repeating: 0, count: FrameHeader.size)
        pendingHandles.reserveCapacity(8)
        pendingFragments.reserveCapacity(8)
    }

    deinit {
        // A parser dropped without `finish()`/`abort()` still returns what it held.
        ledger.drop(pendingHandles)
    }

    /// Whether the connection ended (error or finished).
    public var isDone: Bool {
        switch state {
        case .failed, .finished: return true
        default: return false
        }
    }

    /// Parses one segment and calls `deliver` for each frame it completes. The segment is
    /// the parser's from now on (also when this throws). Throws when the input is bad;
    /// the parser has then dropped every reference it held, and stays failed.
    public mutating func consume(_ segment: Segment, deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        if case let .failed(error) = state {
            releaseUnused(segment.item)
            throw error
        }
        precondition(!isFinished, "segment fed to a parser after the connection finished")
        statistics.segments += 1
        statistics.bytes += segment.count
        guard segment.count > 0 else {
            releaseUnused(segment.item)
            return
        }
        switch mode {
        case .raw:
            consumeRaw(segment, deliver: deliver)
        case let .framed(maxPayload):
            do throws(FrameError) {
                try consumeFramed(segment, maxPayload: maxPayload, deliver: deliver)
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
            fail(.closedInHeader(received: filled, expected: FrameHeader.size))
            throw .closedInHeader(received: filled, expected: FrameHeader.size)
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
        ledger.drop(pendingHandles)
        pendingHandles.removeAll(keepingCapacity: false)
        pendingFragments.removeAll(keepingCapacity: false)
        current = nil
        state = .failed(error)
    }

    /// Ends the connection locally; the half-received frame, if any, is dropped.
    public mutating func abort() {
        if case .failed = state { return }
        fail(.aborted)
    }

    /// Whether the parser is between frames (nothing of a next frame received yet).
    public var isAtFrameBoundary: Bool {
        switch state {
        case let .header(filled): return filled == 0
        case .finished: return true
        default: return false
        }
    }

    /// Payload references held for the frame being received.
    public var referencesHeld: Int { pendingHandles.count }

    private var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    // MARK: - Raw mode

    private mutating func consumeRaw(_ segment: Segment, deliver: (ReceivedFrame) -> Void) {
        let token = ledger.enterIssuingToken(segment.item)
        let fragment = makeFragment(segment.location, offset: 0, length: segment.count, token: token)
        statistics.fragments += 1
        statistics.payloadBytes += segment.count
        deliver(ReceivedFrame(header: nil, message: Message(linear: [], fragments: [fragment])))
    }

    // MARK: - Framed mode

    private mutating func consumeFramed(_ segment: Segment, maxPayload: Int,
                                        deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        let count = segment.count
        var position = 0
        // The ledger handle for this segment, entered when the first payload piece in it
        // is kept; the parser's own reference is dropped at the end.
        var handle: SegmentLedger<Item>.Handle? = nil
        defer {
            if let handle { ledger.drop(handle) } else { releaseUnused(segment.item) }
        }
        while position < count {
            switch state {
            case let .header(filled):
                guard let bytes = segment.bytes else {
                    preconditionFailure("framed receive needs readable memory for headers; use raw mode for device memory")
                }
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
                let header = FrameHeader(decoding: headerBytes)
                try header.validate(maxPayload: maxPayload)
                current = header
                crc = 0
                crcCheckable = true
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
                if handle == nil { handle = ledger.enter(segment.item) }
                ledger.retain(handle!)
                pendingHandles.append(handle!)
                var piece = segment.location
                piece.offset += UInt32(position)
                piece.length = UInt32(take)
                pendingFragments.append(makeFragment(piece, offset: 0, length: take, token: 0))
                if current!.hasPayloadCRC {
                    if let bytes = segment.bytes {
                        crc = CRC32C.checksum(UnsafeRawBufferPointer(start: bytes + position, count: take), continuing: crc)
                    } else {
                        crcCheckable = false
                    }
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
            if crcCheckable {
                guard crc == header.payloadCRC32C else {
                    throw .checksumMismatch(sequence: header.sequence, expected: header.payloadCRC32C, computed: crc)
                }
                statistics.checksumsVerified += 1
            } else {
                statistics.checksumsUnverifiable += 1
            }
        }
        var fragments = pendingFragments
        if !pendingHandles.isEmpty {
            ledger.issueTokens(adopting: pendingHandles, assigningTo: &fragments)
        }
        pendingHandles.removeAll(keepingCapacity: true)
        pendingFragments.removeAll(keepingCapacity: true)
        statistics.frames += 1
        statistics.payloadBytes += Int(header.payloadLength)
        statistics.fragments += fragments.count
        current = nil
        state = .header(filled: 0)
        deliver(ReceivedFrame(header: header, message: Message(linear: headerBytes, fragments: fragments)))
    }

    // MARK: - Helpers

    private func releaseUnused(_ item: Item) {
        // No payload lies in it: back at once, through the ledger so it is counted once.
        ledger.drop(ledger.enter(item))
    }

    private mutating func makeFragment(_ location: NetmemFragment, offset: Int, length: Int, token: UInt32) -> Fragment {
        let areaID = location.ref.areaID
        if areaID != cachedAreaID {
            cachedAreaID = areaID
            cachedChunkSize = UInt64(location.ref.area.chunkSize)
        }
        var piece = location
        piece.offset += UInt32(offset)
        piece.length = UInt32(length)
        return Fragment(
            regionOffset: UInt64(location.ref.chunk) * cachedChunkSize + UInt64(piece.offset),
            length: length, token: token, regionID: UInt32(areaID), location: piece)
    }
}
