import Netmem
import NetmemDevice
import Synchronization

/// Keeps received segments alive while payload fragments that lie in them are out with a
/// consumer, and gives each fragment the token that returns it. A segment goes back to
/// its owner (the `release` closure: the receiver's buffer ring, a page pool) once the
/// parser is done with it and the last token naming a piece of it has been returned.
///
/// This is the token table of Netmem's own receive paths (the kernel keeps the same in a
/// devmem TCP socket's `sk_user_frags`). Thread-safe: the receive thread holds and issues,
/// consumers on any thread return tokens with `dontNeed`.
public final class SegmentLedger<Item: Sendable>: TokenReturning, @unchecked Sendable {
    /// Gives a segment back to whoever delivered it (the receiver's `release`). Called
    /// exactly once per segment entered, with the lock held; it must not call back into
    /// the ledger.
    public typealias Release = @Sendable (Item) -> Void

    /// A segment the ledger keeps (an index into its table).
    public struct Handle: Sendable, Hashable {
        let slot: Int32
    }

    struct Slot {
        var item: Item?
        var references: Int32
    }

    struct State {
        var segments: [Slot] = []
        init() {}
        var freeSegments: [Int32] = []
        /// Token → segment slot, or -1 when the token is not out.
        var tokens: [Int32] = []
        var freeTokens: [UInt32] = []
        var segmentsHeld = 0
        var tokensOut = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let release: Release
    /// Segments given back through `release`, over the ledger's life.
    private let released = Atomic<Int>(0)

    public init(release: @escaping Release) {
        self.release = release
    }

    /// Starts keeping a segment, with one reference owned by the caller.
    public func enter(_ item: Item) -> Handle {
        state.withLockChecked { s in
            Handle(slot: enterLocked(&s, item))
        }
    }

    /// Adds a reference to a kept segment.
    public func retain(_ handle: Handle) {
        state.withLockChecked { s in
            precondition(s.segments[Int(handle.slot)].references > 0, "retain of a segment the ledger no longer keeps")
            s.segments[Int(handle.slot)].references += 1
        }
    }

    /// Drops a reference; the segment is released when it was the last.
    public func drop(_ handle: Handle) {
        state.withLockChecked { s in dropLocked(&s, handle.slot) }
    }

    /// Drops one reference from each handle (for abandoning a half-received frame).
    public func drop(_ handles: [Handle]) {
        guard !handles.isEmpty else { return }
        state.withLockChecked { s in
            for h in handles { dropLocked(&s, h.slot) }
        }
    }

    /// Turns references the caller owns into tokens, one per handle, in order: each token
    /// now owns its reference, and `dontNeed` drops it.
    public func issueTokens(adopting handles: [Handle], into tokens: inout [UInt32]) {
        state.withLockChecked { s in
            for h in handles { tokens.append(issueLocked(&s, h.slot)) }
        }
    }

    /// Turns one reference the caller owns into a token.
    public func issueToken(adopting handle: Handle) -> UInt32 {
        state.withLockChecked { s in issueLocked(&s, handle.slot) }
    }

    /// Starts keeping a segment and gives its one reference to a new token at once (raw
    /// mode: the whole segment is one fragment).
    public func enterIssuingToken(_ item: Item) -> UInt32 {
        state.withLockChecked { s in
            issueLocked(&s, enterLocked(&s, item))
        }
    }

    /// Turns the references the caller owns into tokens, one per handle, and stores each
    /// token in the fragment at the same index.
    public func issueTokens(adopting handles: [Handle], assigningTo fragments: inout [Fragment]) {
        precondition(handles.count == fragments.count, "one handle per fragment")
        state.withLockChecked { s in
            for i in handles.indices { fragments[i].token = issueLocked(&s, handles[i].slot) }
        }
    }

    /// Keeps a segment in a free slot (or a new one) with one reference; returns the slot.
    private func enterLocked(_ s: inout State, _ item: Item) -> Int32 {
        let slot: Int32
        if let free = s.freeSegments.popLast() {
            slot = free
            s.segments[Int(slot)] = Slot(item: item, references: 1)
        } else {
            slot = Int32(s.segments.count)
            s.segments.append(Slot(item: item, references: 1))
        }
        s.segmentsHeld += 1
        return slot
    }

    private func issueLocked(_ s: inout State, _ slot: Int32) -> UInt32 {
        precondition(s.segments[Int(slot)].references > 0, "token for a segment the ledger no longer keeps")
        let token: UInt32
        if let free = s.freeTokens.popLast() {
            token = free
            s.tokens[Int(token)] = slot
        } else {
            token = UInt32(s.tokens.count)
            s.tokens.append(slot)
        }
        s.tokensOut += 1
        return token
    }

    /// Gives back the tokens in `ranges`; each drops its segment reference. Mirrors
    /// `setsockopt(SO_DEVMEM_DONTNEED)`, with the kernel's limits.
    public func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        guard ranges.count <= TokenLimits.maxRanges else { throw .tooManyRanges(ranges.count) }
        let total = ranges.reduce(0) { $0 + Int($1.count) }
        guard total <= TokenLimits.maxFragments else { throw .tooManyFragments(total) }
        let result: Result<Int, TokenError> = state.withLockChecked { s in
            var freed = 0
            for range in ranges {
                var token = range.start
                for _ in 0..<range.count {
                    guard Int(token) < s.tokens.count else { return .failure(.unknownToken(token, freedBefore: freed)) }
                    let slot = s.tokens[Int(token)]
                    guard slot >= 0 else { return .failure(.alreadyReturned(token, freedBefore: freed)) }
                    s.tokens[Int(token)] = -1
                    s.freeTokens.append(token)
                    s.tokensOut -= 1
                    dropLocked(&s, slot)
                    freed += 1
                    token &+= 1
                }
            }
            return .success(freed)
        }
        return try result.get()
    }

    /// Returns the tokens of all fragments of a message (batched within the kernel's limits).
    @discardableResult
    public func dontNeed(_ message: Message) throws(TokenError) -> Int {
        var freed = 0
        var batch: [TokenRange] = []
        for fragment in message.fragments {
            batch.append(TokenRange(token: fragment.token))
            if batch.count == TokenLimits.maxRanges {
                freed += try dontNeed(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { freed += try dontNeed(batch) }
        return freed
    }

    /// Segments kept now (entered and not yet released).
    public var segmentsHeld: Int { state.withLockChecked { $0.segmentsHeld } }
    /// Tokens out with consumers now.
    public var tokensOutstanding: Int { state.withLockChecked { $0.tokensOut } }
    /// Segments given back over the ledger's life.
    public var segmentsReleased: Int { released.load(ordering: .relaxed) }

    private func dropLocked(_ s: inout State, _ slot: Int32) {
        let i = Int(slot)
        precondition(s.segments[i].references > 0, "segment reference dropped twice")
        s.segments[i].references -= 1
        if s.segments[i].references == 0 {
            s.segmentsHeld -= 1
            s.freeSegments.append(slot)
            let item = s.segments[i].item!
            s.segments[i].item = nil
            release(item)
            released.add(1, ordering: .relaxed)
        }
    }
}
