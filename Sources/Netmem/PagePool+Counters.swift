import Synchronization

/// A counter only the pool's owner thread writes: a relaxed load and store (plain moves),
/// so any thread may read it without a data race.
@usableFromInline
struct OwnerCounter: ~Copyable, Sendable {
    @usableFromInline let storage = Atomic<Int>(0)
    @usableFromInline init() {}
    @inlinable @inline(__always)
    func add(_ n: Int) { storage.store(storage.load(ordering: .relaxed) &+ n, ordering: .relaxed) }
    @inlinable var value: Int { storage.load(ordering: .relaxed) }
}

/// A counter any thread may add to.
@usableFromInline
struct SharedCounter: ~Copyable, Sendable {
    @usableFromInline let storage = Atomic<Int>(0)
    @usableFromInline init() {}
    @inlinable @inline(__always)
    func add(_ n: Int) { storage.wrappingAdd(n, ordering: .relaxed) }
    @inlinable var value: Int { storage.load(ordering: .relaxed) }
}

extension PagePool {
    /// The counters the owner thread writes, stored inline in the pool; the kernel's
    /// names are on `PagePoolStats`.
    @usableFromInline
    struct Counters: ~Copyable, Sendable {
        @usableFromInline let allocFast = OwnerCounter()
        @usableFromInline let allocSlow = OwnerCounter()
        @usableFromInline let allocSlowHighOrder = OwnerCounter()
        @usableFromInline let allocEmpty = OwnerCounter()
        @usableFromInline let allocRefill = OwnerCounter()
        @usableFromInline let allocWaive = OwnerCounter()
        @usableFromInline let recycleCached = OwnerCounter()
        @usableFromInline let recycleCacheFull = OwnerCounter()
        /// Chunks handed to users outside the fast path (fragmented chunks count once);
        /// every fast-path allocation hands one out too, so the total is
        /// `allocFast + handedOutSlow` and the fast path bumps a single counter.
        @usableFromInline let handedOutSlow = OwnerCounter()
        /// Chunks taken from the provider.
        @usableFromInline let obtained = OwnerCounter()
        @usableFromInline init() {}
    }

    /// The counters any thread may bump (all off the fast paths), kept apart from the
    /// owner's so that neither side's writes move the other's cache lines.
    @usableFromInline
    struct SharedCounters: ~Copyable, Sendable {
        @usableFromInline let recycleRingFull = SharedCounter()
        @usableFromInline let recycleReleasedRefcnt = SharedCounter()
        /// Chunks returned after the pool closed (they go to the provider directly).
        @usableFromInline let returnedAfterClose = SharedCounter()
        /// Chunks given back to the provider.
        @usableFromInline let released = SharedCounter()
        @usableFromInline init() {}
    }
}

/// 64 bytes of nothing between groups of a type's stored properties, so that fields
/// written by one thread and fields read by another never share a cache line.
@usableFromInline
struct CacheLinePad: Sendable {
    let words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    @usableFromInline init() {}
}

/// A page pool's statistics, with the kernel's names (`page_pool_stats`).
public struct PagePoolStats: Sendable, Equatable, CustomStringConvertible {
    /// Allocation counters (`page_pool_alloc_stats`).
    public struct Alloc: Sendable, Equatable {
        /// Allocations served from the alloc cache.
        public var fast = 0
        /// Bulk refills from the provider.
        public var slow = 0
        /// Contiguous multi-chunk allocations from the provider.
        public var slowHighOrder = 0
        /// Allocations that found the ring and the provider empty.
        public var empty = 0
        /// Refills of the alloc cache from the recycle ring.
        public var refill = 0
        /// Chunks from the ring not reused because the provider stopped lending.
        public var waive = 0
    }
    /// Counters of returned chunks (`page_pool_recycle_stats`).
    public struct Recycle: Sendable, Equatable {
        /// Returned straight into the alloc cache.
        public var cached = 0
        /// Returned on the owner while the alloc cache was full.
        public var cacheFull = 0
        /// Put into the recycle ring.
        public var ring = 0
        /// Found the ring full and went to the provider.
        public var ringFull = 0
        /// Handed back to the provider instead of recycled (pool closing or closed).
        public var releasedRefcnt = 0
    }
    /// How allocations were served.
    public var alloc = Alloc()
    /// Where returned chunks went.
    public var recycle = Recycle()
    /// Chunks handed out to users.
    public var handedOut = 0
    /// Chunks users gave back.
    public var returned = 0
    /// Chunks held from the provider (in the pool's caches or handed out): the kernel's
    /// hold − release.
    public var held = 0

    /// Handed out minus returned.
    public var inFlight: Int { handedOut - returned }

    /// (kernel name, value) pairs, in the kernel's order.
    public var fields: [(String, Int)] {
        [("alloc_fast", alloc.fast), ("alloc_slow", alloc.slow), ("alloc_slow_high_order", alloc.slowHighOrder),
         ("alloc_empty", alloc.empty), ("alloc_refill", alloc.refill), ("alloc_waive", alloc.waive),
         ("recycle_cached", recycle.cached), ("recycle_cache_full", recycle.cacheFull),
         ("recycle_ring", recycle.ring), ("recycle_ring_full", recycle.ringFull),
         ("recycle_released_refcnt", recycle.releasedRefcnt),
         ("handed_out", handedOut), ("returned", returned), ("in_flight", inFlight), ("held", held)]
    }

    public var description: String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
}

extension PagePool {
    /// A snapshot of the statistics (any thread; each counter is read once, so a pool in
    /// use may show counters from slightly different instants).
    public var stats: PagePoolStats {
        var s = PagePoolStats()
        s.alloc.fast = counters.allocFast.value
        s.alloc.slow = counters.allocSlow.value
        s.alloc.slowHighOrder = counters.allocSlowHighOrder.value
        s.alloc.empty = counters.allocEmpty.value
        s.alloc.refill = counters.allocRefill.value
        s.alloc.waive = counters.allocWaive.value
        s.recycle.cached = counters.recycleCached.value
        s.recycle.cacheFull = counters.recycleCacheFull.value
        s.recycle.ring = ring.produced
        s.recycle.ringFull = shared.recycleRingFull.value
        s.recycle.releasedRefcnt = shared.recycleReleasedRefcnt.value
        s.returned = s.recycle.cached + s.recycle.ring + s.recycle.ringFull + shared.returnedAfterClose.value
        s.handedOut = counters.allocFast.value + counters.handedOutSlow.value
        s.held = counters.obtained.value - shared.released.value
        return s
    }

    /// Buffers handed out and not yet returned.
    public var inFlight: Int {
        // Read returns first: a return can only follow its hand-out, so this never goes
        // below zero.
        let returned = counters.recycleCached.value + ring.produced + shared.recycleRingFull.value
            + shared.returnedAfterClose.value
        return counters.allocFast.value + counters.handedOutSlow.value - returned
    }
}
