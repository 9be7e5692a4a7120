import Synchronization

/// The chunk the owner is carving fragments from (the kernel's `frag_page`,
/// `frag_offset` and `frag_users`).
@usableFromInline
struct FragmentCursor {
    @usableFromInline var ref = NetmemRef(rawValue: 0)
    @usableFromInline var offset = 0
    @usableFromInline var users: UInt64 = 0
    @usableFromInline var active = false
    @usableFromInline init() {}
}

extension PagePool {
    /// The reference count a chunk starts with when carving begins; what was not used is
    /// subtracted when the owner moves on (the kernel's `BIAS_MAX` trick: one atomic
    /// operation per chunk on the owner, one per fragment on release).
    @usableFromInline static let fragmentBias: UInt64 = 1 << 24
    /// Fragments start on this boundary.
    @usableFromInline static let fragmentAlignment = 64

    /// A piece of `length` bytes carved from a chunk shared with other fragments; nil
    /// when the pool is out of chunks. The chunk recycles when its last fragment is
    /// released. Owner thread only. Mirrors `page_pool_alloc_frag`.
    @inlinable
    public func allocateFragment(length: Int) -> NetmemFragment? {
        guard let maxFragment = configuration.fragmentSize else {
            preconditionFailure("allocateFragment on pool '\(configuration.name)', which was made without fragment support")
        }
        precondition(length > 0 && length <= maxFragment,
                      "fragment of \(length) bytes asked from pool '\(configuration.name)' (fragment size \(maxFragment))")
        if fragment.active && fragment.offset + length <= chunkSize && !closed.load(ordering: .relaxed) {
            let f = NetmemFragment(ref: fragment.ref, offset: UInt32(fragment.offset), length: UInt32(length))
            fragment.offset = (fragment.offset + length + Self.fragmentAlignment - 1) & ~(Self.fragmentAlignment - 1)
            fragment.users &+= 1
            return f
        }
        return allocateFragmentSlow(length: length)
    }

    @inline(never)
    @usableFromInline
    func allocateFragmentSlow(length: Int) -> NetmemFragment? {
        if fragment.active { finishFragmentChunk() }
        if closed.load(ordering: .relaxed) { return nil }
        guard let ref = allocate() else { return nil }
        ChunkMeta.word(ref).pointee.store(handedWord | Self.fragmentBias, ordering: .relaxed)
        fragment = FragmentCursor()
        fragment.ref = ref
        fragment.offset = (length + Self.fragmentAlignment - 1) & ~(Self.fragmentAlignment - 1)
        fragment.users = 1
        fragment.active = true
        return NetmemFragment(ref: ref, offset: 0, length: UInt32(length))
    }

    /// Stops carving from the current chunk: drops the unused part of the bias, and
    /// recycles the chunk if every fragment of it already came back.
    @usableFromInline
    func finishFragmentChunk() {
        guard fragment.active else { return }
        fragment.active = false
        let unused = Self.fragmentBias - fragment.users
        let old = ChunkMeta.word(fragment.ref).pointee.wrappingSubtract(unused, ordering: .acquiringAndReleasing).oldValue
        if (old & ChunkMeta.refMask) == unused { recycle(fragment.ref) }
    }

    /// Releases one fragment (any thread). The chunk goes back to the pool when this was
    /// its last fragment. Mirrors `page_pool_unref_netmem` + put.
    @inlinable
    public func releaseFragment(_ f: NetmemFragment) {
        let word = ChunkMeta.word(f.ref)
        let old = word.pointee.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue
        if (old & ChunkMeta.refMask) == 0 || ChunkMeta.owner(old) != id || old & ChunkMeta.handedOut == 0 {
            badFragmentRelease(f, word: old)
        }
        if (old & ChunkMeta.refMask) == 1 { recycle(f.ref) }
    }

    /// Takes an extra reference on a fragment's chunk, for a second holder of the same
    /// bytes (any thread). Each reference is dropped with `releaseFragment`.
    public func retainFragment(_ f: NetmemFragment) {
        let old = ChunkMeta.word(f.ref).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
        precondition((old & ChunkMeta.refMask) > 0 && ChunkMeta.owner(old) == id,
                     "retain of \(f), which pool '\(configuration.name)' does not have out as a fragment")
    }

    @inline(never)
    @usableFromInline
    func badFragmentRelease(_ f: NetmemFragment, word: UInt64) -> Never {
        if ChunkMeta.owner(word) != id {
            preconditionFailure("fragment \(f) released to pool '\(configuration.name)' (id \(id)) but its chunk belongs to pool id \(ChunkMeta.owner(word))")
        }
        preconditionFailure("fragment \(f) released to pool '\(configuration.name)' once more than it was handed out")
    }
}
