import Netmem
import NetmemDevice
import Synchronization

/// The tokens of one AF_XDP socket's fragments: a slab from token to the UMEM frame that
/// holds the payload. Giving a token back (`dontNeed`) recycles its frame into the page
/// pool, from where the RX thread refills the fill ring. Any thread may return tokens.
public final class XDPTokenTable: TokenReturning, @unchecked Sendable {
    struct Slab: ~Copyable {
        /// Per token: the frame's `NetmemRef` raw value when issued, else `free`.
        var frames: [UInt64]
        /// Free slots, used as a stack.
        var freeList: [UInt32]
        /// Tokens handed out since the last return count.
        var outstanding = 0
    }

    static let free: UInt64 = .max
    let slab: Mutex<Slab>
    let pool: PagePool
    public let capacity: Int

    init(capacity: Int, pool: PagePool) {
        self.capacity = capacity
        self.pool = pool
        slab = Mutex(Slab(frames: [UInt64](repeating: Self.free, count: capacity),
                          freeList: (0..<UInt32(capacity)).reversed()))
    }

    /// Tokens issued and not returned yet.
    public var outstanding: Int { slab.withLock { $0.outstanding } }

    /// Issues a token for a frame; nil when every token is out (cannot happen while the
    /// table has one slot per UMEM frame).
    func issue(_ ref: NetmemRef) -> UInt32? {
        slab.withLock { s in
            guard let t = s.freeList.popLast() else { return nil }
            s.frames[Int(t)] = ref.rawValue
            s.outstanding += 1
            return t
        }
    }

    /// Gives back the tokens in `ranges`; their frames go back to the page pool. Limits
    /// and errors as the kernel's `SO_DEVMEM_DONTNEED`: at most `TokenLimits.maxRanges`
    /// ranges and `TokenLimits.maxFragments` tokens per call; an unknown or already
    /// returned token stops the call (tokens before it stay freed).
    public func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        guard ranges.count <= TokenLimits.maxRanges else { throw .tooManyRanges(ranges.count) }
        var total = 0
        for r in ranges { total += Int(r.count) }
        guard total <= TokenLimits.maxFragments else { throw .tooManyFragments(total) }
        var refs = [NetmemRef]()
        refs.reserveCapacity(total)
        let failure: TokenError? = slab.withLock { s in
            for r in ranges {
                var t = r.start
                let end = UInt64(r.start) + UInt64(r.count)
                while UInt64(t) < end {
                    guard Int(t) < capacity else { return .unknownToken(t, freedBefore: refs.count) }
                    let raw = s.frames[Int(t)]
                    guard raw != Self.free else { return .alreadyReturned(t, freedBefore: refs.count) }
                    s.frames[Int(t)] = Self.free
                    s.freeList.append(t)
                    s.outstanding -= 1
                    refs.append(NetmemRef(rawValue: raw))
                    t &+= 1
                }
            }
            return nil
        }
        refs.withUnsafeBufferPointer { pool.recycle($0) }
        if let failure { throw failure }
        return refs.count
    }
}
