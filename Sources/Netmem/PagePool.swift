import CNetmemLinux
import Logging
import Synchronization

/// A per-queue buffer cache. Mirrors the kernel's `page_pool`: allocations come from an
/// alloc cache owned by one thread (no atomics), refilled in batches from a lock-free
/// recycle ring that any thread returns into, and then in bulk from the memory provider.
///
/// One thread owns the pool (the creating thread, or the one that calls
/// `adoptOwnership()`); only it may allocate. Any thread may return buffers: on the owner
/// they go straight back into the alloc cache, elsewhere into the recycle ring, and to the
/// provider when the ring is full.
///
/// Returning a buffer twice, or to a pool that does not own it, is a programming error
/// and traps with a message naming the buffer.
public final class PagePool: @unchecked Sendable {
    /// How a pool is built: its provider, chunk size, capacity and cache sizes. `PagePool.init`
    /// validates it.
    public struct Configuration: Sendable {
        /// Where chunks come from.
        public var provider: any MemoryProvider
        /// Bytes per chunk: a power of two, 2 KiB to 2 MiB; must equal the provider's.
        public var chunkSize: Int
        /// The most chunks the pool holds from its provider at once.
        public var poolSize: Int
        /// The largest fragment `allocateFragment(length:)` hands out; nil for a pool
        /// without fragment support.
        public var fragmentSize: Int?
        /// Chunks kept in the owner's alloc cache (the kernel's `PP_ALLOC_CACHE_SIZE`).
        public var cacheSize: Int = 128
        /// Chunks moved per refill, from the ring or the provider (`PP_ALLOC_CACHE_REFILL`).
        public var refillBatch: Int = 64
        /// Recycle ring slots; nil picks the pool size (rounded up to a power of two).
        public var ringSize: Int?
        /// A name for logs and statistics.
        public var name: String = "pool"
        /// After `destroy()`, how long in-flight buffers may stay out before the pool
        /// reports (and logs, at most once per this interval) a stalled shutdown.
        public var stallWarningAfter: Duration = .seconds(60)

        /// A configuration with the default cache, refill and ring sizes. `chunkSize` nil takes the
        /// provider's.
        public init(provider: any MemoryProvider, chunkSize: Int? = nil, poolSize: Int,
                    fragmentSize: Int? = nil, name: String = "pool") {
            self.provider = provider
            self.chunkSize = chunkSize ?? provider.chunkSize
            self.poolSize = poolSize
            self.fragmentSize = fragmentSize
            self.name = name
        }

        func validate() throws(NetmemError) {
            guard chunkSize >= 2048, chunkSize <= 2 << 20, chunkSize & (chunkSize - 1) == 0 else {
                throw .invalidChunkSize(chunkSize, allowed: "a power of two from 2048 to 2097152 bytes")
            }
            guard poolSize > 0 else { throw .invalidChunkCount(poolSize) }
            if let f = fragmentSize {
                guard f > 0 else { throw .invalidOption(name: "fragment size", value: "\(f)", reason: "must be at least 1 byte") }
                guard f <= chunkSize else { throw .fragmentLargerThanChunk(fragment: f, chunk: chunkSize) }
            }
            guard provider.chunkSize == chunkSize else { throw .chunkSizeMismatch(pool: chunkSize, provider: provider.chunkSize) }
            guard cacheSize > 0 else { throw .invalidOption(name: "cache size", value: "\(cacheSize)", reason: "must be at least 1") }
            guard refillBatch > 0 else { throw .invalidOption(name: "refill batch", value: "\(refillBatch)", reason: "must be at least 1") }
            if let r = ringSize, r < 1 { throw .invalidOption(name: "ring size", value: "\(r)", reason: "must be at least 1") }
        }
    }

    // Read-mostly state: written at initialisation (the owner token by `adoptOwnership`,
    // the home area once, by the first refill), read by every thread that returns a
    // buffer. It shares no cache line with what the owner writes on every allocation,
    // so a return from another thread does not pull a line the owner keeps writing.
    /// The configuration the pool was created with.
    public let configuration: Configuration
    /// Identifies the pool in chunk metadata (31 bits, never 0).
    public let id: UInt32
    @usableFromInline let provider: any MemoryProvider
    @usableFromInline let chunkSize: Int
    @usableFromInline @exclusivity(unchecked) var ownerToken: UInt
    /// Metadata word of a chunk the pool holds (in cache or ring) / has handed out.
    @usableFromInline let ownedWord: UInt64
    @usableFromInline let handedWord: UInt64
    @usableFromInline let ring: RecycleRing
    /// Set by `destroy()` or `stopAllocating()`: allocation fails from then on.
    @usableFromInline let closed = Atomic<Bool>(false)
    /// The area most of the pool's chunks come from, and its metadata base, so that batch
    /// loops address a chunk's metadata word without a table lookup per chunk.
    @usableFromInline let home = HomeArea()
    let padRead = CacheLinePad()

    // Owner-thread state: no atomics.
    @usableFromInline let cache: UnsafeMutablePointer<NetmemRef>
    @usableFromInline let cacheCapacity: Int
    @usableFromInline @exclusivity(unchecked) var cacheCount: Int = 0
    /// Cache slots at and above this index hold chunks of the home area only (slots below
    /// it may hold chunks of other areas); lets batch allocation skip the per-chunk area
    /// lookup.
    @usableFromInline @exclusivity(unchecked) var mixedBelow: Int = 0
    @usableFromInline @exclusivity(unchecked) var fragment = FragmentCursor()
    @usableFromInline let counters = Counters()
    let padOwner = CacheLinePad()

    // Written by any thread, rarely (ring full, provider hand-back, returns after close).
    @usableFromInline let shared = SharedCounters()
    let shutdown = Mutex(ShutdownState())

    static let nextID = Atomic<UInt32>(1)
    static let logger = Logger(label: "netmem.pagepool")

    /// Creates a pool owned by the calling thread.
    public init(_ configuration: Configuration) throws(NetmemError) {
        try configuration.validate()
        self.configuration = configuration
        provider = configuration.provider
        chunkSize = configuration.chunkSize
        var id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue & 0x7FFF_FFFF
        if id == 0 { id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue & 0x7FFF_FFFF }
        self.id = id
        ownedWord = ChunkMeta.make(owner: id, handedOut: false)
        handedWord = ChunkMeta.make(owner: id, handedOut: true)
        ownerToken = cnm_thread_token()
        cacheCapacity = configuration.cacheSize
        cache = .allocate(capacity: configuration.cacheSize)
        ring = RecycleRing(capacity: configuration.ringSize ?? max(configuration.poolSize, 64))
    }

    deinit {
        // Whatever the pool still holds goes back to the provider. Buffers still handed
        // out are the caller's bug; their chunks stay out of the provider.
        if !shutdown.withLockChecked({ $0.finished }) {
            for i in 0..<cacheCount { giveToProvider(cache[i]) }
            var ref = NetmemRef(rawValue: 0)
            while ring.pop(into: &ref, max: 1) == 1 { giveToProvider(ref) }
            provider.poolDidFinish(id: id)
        }
        cache.deallocate()
    }

    // MARK: Ownership

    /// Makes the calling thread the pool's owner (the only one that may allocate). Call it
    /// from the RX thread before its first allocation; the previous owner must be done.
    public func adoptOwnership() { ownerToken = cnm_thread_token() }

    /// Whether the calling thread owns the pool.
    @inlinable
    public var isOwnedByCurrentThread: Bool { cnm_thread_token() == ownerToken }

    @inlinable @inline(__always)
    func checkOwner(_ what: StaticString) {
        precondition(cnm_thread_token() == ownerToken, "\(what) called off the thread that owns pool '\(configuration.name)'")
    }

    // MARK: Allocation

    /// One chunk, or nil when the pool is exhausted (it holds `poolSize` chunks and none
    /// came back), the provider is empty, or the pool is closed. Owner thread only.
    /// Mirrors `page_pool_alloc_netmems`.
    @inlinable @inline(__always)
    public func allocate() -> NetmemRef? {
        checkOwner("allocate")
        if cacheCount > 0 && !closed.load(ordering: .relaxed) {
            let top = cacheCount &- 1
            cacheCount = top
            let ref = cache[top]
            let word: UnsafeMutablePointer<Atomic<UInt64>>
            if top >= mixedBelow {
                word = HomeArea.word(ref.rawValue, biased: home.biased.load(ordering: .relaxed))
            } else {
                word = ChunkMeta.word(ref)
                mixedBelow = top
            }
            word.pointee.store(handedWord, ordering: .relaxed)
            counters.allocFast.add(1)
            return ref
        }
        return allocateSlow()
    }

    /// Fills the front of `buffer` and returns how many chunks were allocated (fewer than
    /// asked when the pool runs out). Owner thread only. Mirrors the kernel's bulk alloc.
    ///
    /// Per chunk: one load from the cache, one metadata store, one store to `buffer`;
    /// counters and checks are per batch.
    @inlinable
    public func allocate(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        checkOwner("allocate(into:)")
        let want = buffer.count
        let top = cacheCount
        // The whole batch from home-area chunks at the top of the cache.
        if want <= top && top &- want >= mixedBelow && !closed.load(ordering: .relaxed) {
            let low = top &- want
            Self.markHanded(cache + low, want, biased: home.biased.load(ordering: .relaxed), word: handedWord,
                            copyTo: buffer.baseAddress.unsafelyUnwrapped)
            cacheCount = low
            counters.allocFast.add(want)
            return want
        }
        return allocateBatchSlow(into: buffer)
    }

    /// Stores `word` into the metadata of `count` home-area chunks and copies them to
    /// `out`. Unrolled by four.
    @inlinable @inline(__always)
    static func markHanded(_ src: UnsafePointer<NetmemRef>, _ count: Int, biased: UInt, word: UInt64,
                           copyTo out: UnsafeMutablePointer<NetmemRef>) {
        var i = 0
        let end4 = count & ~3
        while i < end4 {
            let r0 = src[i], r1 = src[i &+ 1], r2 = src[i &+ 2], r3 = src[i &+ 3]
            HomeArea.word(r0.rawValue, biased: biased).pointee.store(word, ordering: .relaxed)
            HomeArea.word(r1.rawValue, biased: biased).pointee.store(word, ordering: .relaxed)
            HomeArea.word(r2.rawValue, biased: biased).pointee.store(word, ordering: .relaxed)
            HomeArea.word(r3.rawValue, biased: biased).pointee.store(word, ordering: .relaxed)
            out[i] = r0
            out[i &+ 1] = r1
            out[i &+ 2] = r2
            out[i &+ 3] = r3
            i &+= 4
        }
        while i < count {
            let r = src[i]
            HomeArea.word(r.rawValue, biased: biased).pointee.store(word, ordering: .relaxed)
            out[i] = r
            i &+= 1
        }
    }

    /// `allocate(into:)` when the cache cannot serve the whole batch from home-area
    /// chunks: refills as it goes, looks areas up where needed.
    @inline(never)
    @usableFromInline
    func allocateBatchSlow(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        var n = 0
        let want = buffer.count
        let word = handedWord
        while n < want {
            if cacheCount == 0 || closed.load(ordering: .relaxed) {
                guard refillCache() else { break }
            }
            let top = cacheCount
            let take = Swift.min(top, want &- n)
            let low = top &- take
            let src = cache + low
            let out = buffer.baseAddress.unsafelyUnwrapped + n
            if low >= mixedBelow {
                Self.markHanded(src, take, biased: home.biased.load(ordering: .relaxed), word: word, copyTo: out)
            } else {
                for i in 0..<take {
                    let ref = src[i]
                    ChunkMeta.word(ref).pointee.store(word, ordering: .relaxed)
                    out[i] = ref
                }
                mixedBelow = low
            }
            cacheCount = low
            n &+= take
        }
        counters.allocFast.add(n)
        return n
    }

    @inline(never)
    @usableFromInline
    func allocateSlow() -> NetmemRef? {
        guard refillCache() else { return nil }
        cacheCount -= 1
        if mixedBelow > cacheCount { mixedBelow = cacheCount }
        let ref = cache[cacheCount]
        ChunkMeta.word(ref).pointee.store(handedWord, ordering: .relaxed)
        counters.handedOutSlow.add(1)
        return ref
    }

    /// Notes that cache slots below `end` may hold chunks outside the home area, unless
    /// the `count` chunks starting at slot `start` are all home-area chunks. Owner thread.
    @inlinable @inline(__always)
    func noteArrivals(at start: Int, count: Int) {
        if !Self.allHome(cache + start, count, home.bits.load(ordering: .relaxed)) {
            mixedBelow = Swift.max(mixedBelow, start &+ count)
        }
    }

    /// Refills the alloc cache: from the recycle ring, else in bulk from the provider.
    /// Returns false when nothing could be had. Owner thread only.
    @inline(never)
    @usableFromInline
    func refillCache() -> Bool {
        if closed.load(ordering: .acquiring) {
            flushCacheToProvider()
            return false
        }
        let batch = Swift.min(configuration.refillBatch, cacheCapacity - cacheCount)
        if batch <= 0 { return cacheCount > 0 }
        let got = ring.pop(into: cache + cacheCount, max: batch)
        if got > 0 {
            if provider.isLending {
                noteArrivals(at: cacheCount, count: got)
                cacheCount += got
                counters.allocRefill.add(1)
                return true
            }
            // The provider stopped lending: what came back goes home instead.
            for i in 0..<got { giveToProvider(cache[cacheCount + i]) }
            counters.allocWaive.add(got)
            return false
        }
        let room = Swift.min(batch, configuration.poolSize - held)
        if room > 0 {
            let n = provider.allocateChunks(into: UnsafeMutableBufferPointer(start: cache + cacheCount, count: room))
            if n > 0 {
                home.adopt(cache[cacheCount])
                for i in 0..<n { ChunkMeta.word(cache[cacheCount + i]).pointee.store(ownedWord, ordering: .relaxed) }
                noteArrivals(at: cacheCount, count: n)
                cacheCount += n
                counters.obtained.add(n)
                counters.allocSlow.add(1)
                return true
            }
        }
        counters.allocEmpty.add(1)
        return false
    }

    /// `count` chunks adjacent in one area (for a receive that wants one large buffer),
    /// straight from the provider; each is returned on its own. Nil when the provider has
    /// no such run. Owner thread only. Counts as `alloc_slow_high_order`.
    public func allocateContiguous(count: Int) -> [NetmemRef]? {
        checkOwner("allocateContiguous")
        precondition(count > 0, "allocateContiguous needs a count of at least 1")
        guard !closed.load(ordering: .relaxed), held + count <= configuration.poolSize,
              let first = provider.allocateContiguous(count: count)
        else {
            counters.allocEmpty.add(1)
            return nil
        }
        var refs: [NetmemRef] = []
        refs.reserveCapacity(count)
        for i in 0..<count {
            let ref = NetmemRef(area: first.areaID, chunk: first.chunk + UInt32(i))
            ChunkMeta.word(ref).pointee.store(handedWord, ordering: .relaxed)
            refs.append(ref)
        }
        counters.obtained.add(count)
        counters.allocSlowHighOrder.add(1)
        counters.handedOutSlow.add(count)
        return refs
    }

    // MARK: Provider hand-back

    @usableFromInline
    func giveToProvider(_ ref: NetmemRef) {
        ChunkMeta.word(ref).pointee.store(0, ordering: .relaxed)
        _ = provider.releaseChunk(ref)
        shared.released.add(1)
    }

    /// The chunks the pool holds from its provider now (in its caches and handed out).
    public var held: Int { counters.obtained.value - shared.released.value }
}
