import CNetmemLinux

/// Gives chunks back to a pool from a thread that is not its owner, a batch at a time.
/// Each `recycle` checks and marks its chunk at once, so a double return or a return to
/// the wrong pool traps at the call that did it, as `PagePool.recycle` does. The chunks
/// then wait here and go into the pool's recycle ring together, with one reservation,
/// once `capacity` of them have gathered: the role of the per-lcore cache that DPDK's
/// `rte_mempool_put` fills. A single `PagePool.recycle` from another thread reserves a
/// ring slot on its own.
///
/// Until a batch is handed over, its chunks count as in flight (`PagePool.inFlight`),
/// and the owner cannot allocate them. `flush()` hands over what is held, and so does
/// the end of the returner. A returner belongs to the thread that uses it (it is not
/// `Sendable`). On the pool's owner thread each chunk goes straight to the alloc cache,
/// as `PagePool.recycle` would send it.
public struct PoolReturner: ~Copyable {
    /// The pool the chunks go back to.
    public let pool: PagePool
    /// Chunks gathered before they are handed over together.
    public let capacity: Int
    @usableFromInline let held: UnsafeMutablePointer<NetmemRef>
    @usableFromInline var heldCount = 0
    /// Chunks checked and waiting to be handed over.
    public var count: Int { heldCount }

    /// A returner for `pool` that hands chunks over `capacity` at a time (1 to the pool's
    /// recycle ring capacity).
    public init(pool: PagePool, capacity: Int = 32) {
        precondition(capacity >= 1 && capacity <= pool.ring.capacity,
                     "PoolReturner capacity \(capacity): must be 1 to \(pool.ring.capacity), the recycle ring of pool '\(pool.configuration.name)'")
        self.pool = pool
        self.capacity = capacity
        held = .allocate(capacity: capacity)
    }

    deinit {
        Self.handOver(pool, held, heldCount)
        held.deallocate()
    }

    /// Gives `ref` back. Traps, naming the buffer, unless `pool` handed it out and it is
    /// not already back.
    @inlinable
    public mutating func recycle(_ ref: NetmemRef) {
        if pool.isOwnedByCurrentThread {
            flush()
            pool.recycle(ref)
            return
        }
        pool.checkAndMarkReturned(ref)
        held[heldCount] = ref
        heldCount &+= 1
        if heldCount == capacity { flush() }
    }

    /// Gives `refs` back (any number): each is checked as `recycle(_:)` checks one, with
    /// the area check once per call.
    @inlinable
    public mutating func recycle(_ refs: UnsafeBufferPointer<NetmemRef>) {
        if pool.isOwnedByCurrentThread {
            flush()
            pool.recycle(refs)
            return
        }
        var done = 0
        while done < refs.count {
            let n = Swift.min(capacity &- heldCount, refs.count &- done)
            let part = UnsafeBufferPointer(rebasing: refs[done..<(done &+ n)])
            pool.checkAndMarkReturned(part)
            (held + heldCount).update(from: part.baseAddress.unsafelyUnwrapped, count: n)
            heldCount &+= n
            done &+= n
            if heldCount == capacity { flush() }
        }
    }

    /// Hands the chunks held so far to the pool.
    @inlinable
    public mutating func flush() {
        Self.handOver(pool, held, heldCount)
        heldCount = 0
    }

    @usableFromInline
    static func handOver(_ pool: PagePool, _ held: UnsafeMutablePointer<NetmemRef>, _ count: Int) {
        if count > 0 { pool.pushReturned(UnsafeBufferPointer(start: held, count: count)) }
    }
}
