import CNetmemLinux
import Synchronization

/// Returning chunks to a pool: on the owner into the alloc cache, from other threads into
/// the recycle ring, and the traps for a double return or a return to the wrong pool.
extension PagePool {
    // MARK: Return

    /// Gives a chunk back. On the owning thread it goes into the alloc cache (the kernel's
    /// direct recycling); from any other thread into the recycle ring; to the provider
    /// when the ring is full. Mirrors `page_pool_put_full_netmem`.
    @inlinable @inline(__always)
    public func recycle(_ ref: NetmemRef) {
        if cnm_thread_token() == ownerToken {
            let top = cacheCount
            let raw = ref.rawValue
            let home = HomeArea.isHome(raw, self.home.bits.load(ordering: .relaxed))
            let word = home ? HomeArea.word(raw, biased: self.home.biased.load(ordering: .relaxed)) : ChunkMeta.word(ref)
            let v = word.pointee.load(ordering: .relaxed)
            if v != handedWord { badReturn(ref, word: v) }
            word.pointee.store(ownedWord, ordering: .relaxed)
            if top < cacheCapacity && !closed.load(ordering: .relaxed) {
                cache[top] = ref
                if !home { mixedBelow = top &+ 1 }
                cacheCount = top &+ 1
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
    ///
    /// Per chunk: one load from `refs`, one metadata load, compare and store, one store
    /// into the cache; the area check, counters and ownership checks are per batch.
    @inlinable
    public func recycle(_ refs: UnsafeBufferPointer<NetmemRef>) {
        let n = refs.count
        // The owner's state is read only on the owner (it lives on the owner's cache lines).
        if cnm_thread_token() == ownerToken {
            let top = cacheCount
            if n <= cacheCapacity &- top && !closed.load(ordering: .relaxed) {
                let src = refs.baseAddress.unsafelyUnwrapped
                if Self.copyAllHome(src, n, home.bits.load(ordering: .relaxed), to: cache + top) {
                    checkAndMarkOwned(src, n, biased: home.biased.load(ordering: .relaxed))
                    cacheCount = top &+ n
                    counters.recycleCached.add(n)
                    return
                }
            }
        }
        recycleBatchSlow(refs)
    }

    /// `recycle(_:)` of a batch that does not fit the cache, holds chunks of other areas,
    /// or comes from another thread.
    @inline(never)
    @usableFromInline
    func recycleBatchSlow(_ refs: UnsafeBufferPointer<NetmemRef>) {
        if refs.isEmpty { return }
        guard cnm_thread_token() == ownerToken && !closed.load(ordering: .relaxed) else {
            recycleForeign(refs)
            return
        }
        let top = cacheCount
        let fits = Swift.min(cacheCapacity &- top, refs.count)
        let src = refs.baseAddress.unsafelyUnwrapped
        if Self.copyAllHome(src, fits, home.bits.load(ordering: .relaxed), to: cache + top) {
            checkAndMarkOwned(src, fits, biased: home.biased.load(ordering: .relaxed))
        } else {
            checkAndMarkOwnedLookingUp(src, fits)
            mixedBelow = Swift.max(mixedBelow, top &+ fits)
        }
        cacheCount = top &+ fits
        counters.recycleCached.add(fits)
        for i in fits..<refs.count { recycle(refs[i]) }
    }

    /// For each of `count` home-area references: traps unless it is handed out by this
    /// pool, and marks it owned. In order, one at a time, so a reference that appears
    /// twice in one batch traps at its second appearance. Unrolled by four: a trap
    /// branch keeps the compiler from unrolling it.
    @inlinable @inline(__always)
    func checkAndMarkOwned(_ src: UnsafePointer<NetmemRef>, _ count: Int, biased: UInt) {
        let handed = handedWord
        let owned = ownedWord
        @inline(__always) func one(_ ref: NetmemRef) {
            let word = HomeArea.word(ref.rawValue, biased: biased)
            let v = word.pointee.load(ordering: .relaxed)
            if v != handed { badReturn(ref, word: v) }
            word.pointee.store(owned, ordering: .relaxed)
        }
        var i = 0
        let end4 = count & ~3
        while i < end4 {
            one(src[i])
            one(src[i &+ 1])
            one(src[i &+ 2])
            one(src[i &+ 3])
            i &+= 4
        }
        while i < count {
            one(src[i])
            i &+= 1
        }
    }

    /// `checkAndMarkOwned` for references of any area (one area-table lookup each).
    @inline(never)
    @usableFromInline
    func checkAndMarkOwnedLookingUp(_ src: UnsafePointer<NetmemRef>, _ count: Int) {
        for i in 0..<count {
            let ref = src[i]
            let word = ChunkMeta.word(ref)
            let v = word.pointee.load(ordering: .relaxed)
            if v != handedWord { badReturn(ref, word: v) }
            word.pointee.store(ownedWord, ordering: .relaxed)
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
            shared.recycleRingFull.add(1)
            giveToProvider(ref)
        }
    }

    @inline(never)
    @usableFromInline
    func recycleForeign(_ ref: NetmemRef) {
        checkAndMarkReturned(ref)
        if !ring.push(ref.rawValue) {
            shared.recycleRingFull.add(1)
            giveToProvider(ref)
        }
        if closed.load(ordering: .acquiring) { pollShutdown() }
    }

    @inline(never)
    @usableFromInline
    func recycleForeign(_ refs: UnsafeBufferPointer<NetmemRef>) {
        checkAndMarkReturned(refs)
        pushReturned(refs)
    }

    /// For a return from a thread other than the owner: traps unless `ref` is handed out
    /// by this pool, and marks it owned. The chunk must then go into the recycle ring.
    ///
    /// A load and a store, not a compare-and-swap: the check catches every double return
    /// except two returns of one buffer racing each other, and saves a locked instruction
    /// on the cross-thread path.
    @inlinable @inline(__always)
    func checkAndMarkReturned(_ ref: NetmemRef) {
        let raw = ref.rawValue
        let word = HomeArea.isHome(raw, home.bits.load(ordering: .acquiring))
            ? HomeArea.word(raw, biased: home.biased.load(ordering: .relaxed)) : ChunkMeta.word(ref)
        let v = word.pointee.load(ordering: .relaxed)
        if v != handedWord { badReturn(ref, word: v) }
        word.pointee.store(ownedWord, ordering: .relaxed)
    }

    /// `checkAndMarkReturned` for many chunks, with the area check once for all.
    @usableFromInline
    func checkAndMarkReturned(_ refs: UnsafeBufferPointer<NetmemRef>) {
        guard let src = refs.baseAddress, !refs.isEmpty else { return }
        if Self.allHome(src, refs.count, home.bits.load(ordering: .acquiring)) {
            checkAndMarkOwned(src, refs.count, biased: home.biased.load(ordering: .relaxed))
        } else {
            checkAndMarkOwnedLookingUp(src, refs.count)
        }
    }

    /// Puts chunks already checked and marked owned into the recycle ring with one
    /// reservation (to the provider what does not fit). Any thread.
    @usableFromInline
    func pushReturned(_ refs: UnsafeBufferPointer<NetmemRef>) {
        let pushed = ring.push(refs)
        if pushed < refs.count {
            shared.recycleRingFull.add(refs.count - pushed)
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
}
