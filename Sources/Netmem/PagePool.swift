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

    public let configuration: Configuration
    /// Identifies the pool in chunk metadata (31 bits, never 0).
    public let id: UInt32
    @usableFromInline let provider: any MemoryProvider
    @usableFromInline let chunkSize: Int

    // Owner-thread state: no atomics.
    @usableFromInline var ownerToken: UInt
    @usableFromInline let cache: UnsafeMutablePointer<NetmemRef>
    @usableFromInline let cacheCapacity: Int
    @usableFromInline var cacheCount: Int = 0
    /// Metadata word of a chunk the pool holds (in cache or ring) / has handed out.
    @usableFromInline let ownedWord: UInt64
    @usableFromInline let handedWord: UInt64
    @usableFromInline var fragment = FragmentCursor()

    @usableFromInline let ring: RecycleRing
    /// Set by `destroy()` or `stopAllocating()`: allocation fails from then on.
    @usableFromInline let closed = Atomic<Bool>(false)
    @usableFromInline let counters = Counters()
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
    @inlinable
    public func allocate() -> NetmemRef? {
        checkOwner("allocate")
        if cacheCount > 0 && !closed.load(ordering: .relaxed) {
            cacheCount &-= 1
            let ref = cache[cacheCount]
            ChunkMeta.word(ref).pointee.store(handedWord, ordering: .relaxed)
            counters.allocFast.add(1)
            return ref
        }
        return allocateSlow()
    }

    /// Fills the front of `buffer` and returns how many chunks were allocated (fewer than
    /// asked when the pool runs out). Owner thread only. Mirrors the kernel's bulk alloc.
    @inlinable
    public func allocate(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        checkOwner("allocate(into:)")
        var n = 0
        let want = buffer.count
        while n < want {
            if cacheCount == 0 || closed.load(ordering: .relaxed) {
                guard refillCache() else { break }
            }
            let take = Swift.min(cacheCount, want &- n)
            let word = handedWord
            // Locals, so the loop keeps them in registers across the metadata stores.
            let top = cacheCount
            let cache = self.cache
            let out = buffer.baseAddress.unsafelyUnwrapped + n
            var i = 0
            while i < take {
                let ref = cache[top &- 1 &- i]
                ChunkMeta.word(ref).pointee.store(word, ordering: .relaxed)
                out[i] = ref
                i &+= 1
            }
            cacheCount = top &- take
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
        let ref = cache[cacheCount]
        ChunkMeta.word(ref).pointee.store(handedWord, ordering: .relaxed)
        counters.handedOutSlow.add(1)
        return ref
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
                for i in 0..<n { ChunkMeta.word(cache[cacheCount + i]).pointee.store(ownedWord, ordering: .relaxed) }
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

    // MARK: Return

    /// Gives a chunk back. On the owning thread it goes into the alloc cache (the kernel's
    /// direct recycling); from any other thread into the recycle ring; to the provider
    /// when the ring is full. Mirrors `page_pool_put_full_netmem`.
    @inlinable
    public func recycle(_ ref: NetmemRef) {
        if cnm_thread_token() == ownerToken {
            let word = ChunkMeta.word(ref)
            let v = word.pointee.load(ordering: .relaxed)
            if v != handedWord { badReturn(ref, word: v) }
            word.pointee.store(ownedWord, ordering: .relaxed)
            if cacheCount < cacheCapacity && !closed.load(ordering: .relaxed) {
                cache[cacheCount] = ref
                cacheCount &+= 1
                counters.recycleCached.add(1)
                return
            }
            recycleOwnerSlow(ref)
        } else {
            recycleForeign(ref)
        }
    }

    /// Gives many chunks back at once (bounded batches; one ring reservation per batch
    /// from other threads).
    @inlinable
    public func recycle(_ refs: UnsafeBufferPointer<NetmemRef>) {
        if refs.isEmpty { return }
        if cnm_thread_token() == ownerToken && !closed.load(ordering: .relaxed) {
            let handed = handedWord
            let owned = ownedWord
            let cache = self.cache
            let room = cacheCapacity &- cacheCount
            let fits = Swift.min(room, refs.count)
            let dst = cache + cacheCount
            let src = refs.baseAddress.unsafelyUnwrapped
            var i = 0
            while i < fits {
                let ref = src[i]
                let word = ChunkMeta.word(ref)
                let v = word.pointee.load(ordering: .relaxed)
                if v != handed { badReturn(ref, word: v) }
                word.pointee.store(owned, ordering: .relaxed)
                dst[i] = ref
                i &+= 1
            }
            cacheCount &+= fits
            counters.recycleCached.add(i)
            while i < refs.count {
                recycle(refs[i])
                i &+= 1
            }
        } else {
            recycleForeign(refs)
        }
    }

    @inline(never)
    @usableFromInline
    func recycleOwnerSlow(_ ref: NetmemRef) {
        if closed.load(ordering: .acquiring) {
            returnAfterClose(ref)
            return
        }
        counters.recycleCacheFull.add(1)
        if !ring.push(ref.rawValue) {
            counters.recycleRingFull.add(1)
            giveToProvider(ref)
        }
    }

    @inline(never)
    @usableFromInline
    func recycleForeign(_ ref: NetmemRef) {
        // A load and a store, not a compare-and-swap: the check catches every double
        // return except two returns of one buffer racing each other, and saves a locked
        // instruction on the cross-thread path.
        let word = ChunkMeta.word(ref)
        let v = word.pointee.load(ordering: .relaxed)
        if v != handedWord { badReturn(ref, word: v) }
        word.pointee.store(ownedWord, ordering: .relaxed)
        if !ring.push(ref.rawValue) {
            counters.recycleRingFull.add(1)
            giveToProvider(ref)
        }
        if closed.load(ordering: .acquiring) { pollShutdown() }
    }

    @inline(never)
    @usableFromInline
    func recycleForeign(_ refs: UnsafeBufferPointer<NetmemRef>) {
        for ref in refs {
            let word = ChunkMeta.word(ref)
            let v = word.pointee.load(ordering: .relaxed)
            if v != handedWord { badReturn(ref, word: v) }
            word.pointee.store(ownedWord, ordering: .relaxed)
        }
        let pushed = ring.push(refs)
        if pushed < refs.count {
            counters.recycleRingFull.add(refs.count - pushed)
            for ref in refs[pushed...] { giveToProvider(ref) }
        }
        if closed.load(ordering: .acquiring) { pollShutdown() }
    }

    /// Traps with a message that names the buffer and what was wrong with the return.
    @inline(never)
    @usableFromInline
    func badReturn(_ ref: NetmemRef, word: UInt64) -> Never {
        let owner = ChunkMeta.owner(word)
        let name = configuration.name
        if owner != id {
            if owner == 0 {
                preconditionFailure("\(ref) returned to pool '\(name)' (id \(id)) but no pool owns it")
            }
            preconditionFailure("\(ref) returned to pool '\(name)' (id \(id)) but it belongs to pool id \(owner)")
        }
        if word & ChunkMeta.handedOut == 0 {
            preconditionFailure("double return of \(ref) to pool '\(name)': it is not handed out")
        }
        preconditionFailure("\(ref) returned to pool '\(name)' while \(word & ChunkMeta.refMask) of its fragments are still held")
    }

    // MARK: Provider hand-back

    @usableFromInline
    func giveToProvider(_ ref: NetmemRef) {
        ChunkMeta.word(ref).pointee.store(0, ordering: .relaxed)
        _ = provider.releaseChunk(ref)
        counters.released.add(1)
    }

    /// The chunks the pool holds from its provider now (in its caches and handed out).
    public var held: Int { counters.obtained.value - counters.released.value }
}
