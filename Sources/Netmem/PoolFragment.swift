/// One reference on a piece of a pool chunk, owned: while it exists the chunk is never
/// recycled, and when it goes away (or is released) the reference drops and the chunk
/// recycles with its last reference. Mirrors holding a `netmem` with a `pp_ref_count`
/// reference. What a receive path hands out for each piece of data that landed.
///
/// It cannot be copied, so a reference is dropped exactly once by construction. A second
/// holder of the same bytes takes its own reference with `piece(offset:length:)`.
public struct PoolFragment: ~Copyable, @unchecked Sendable {
    /// Unmanaged so that `take()` can end ownership without a release; retained by `init`.
    private let owner: Unmanaged<PagePool>
    /// The chunk, and where in it the bytes are.
    public let fragment: NetmemFragment
    /// The CPU address of the first byte; nil when the CPU may not read the memory.
    public let baseAddress: UnsafeRawPointer?

    init(pool: PagePool, fragment: NetmemFragment, baseAddress: UnsafeRawPointer?) {
        owner = Unmanaged.passRetained(pool)
        self.fragment = fragment
        self.baseAddress = baseAddress
    }

    deinit {
        owner.takeUnretainedValue().releaseFragment(fragment)
        owner.release()
    }

    /// The pool the chunk belongs to.
    public var pool: PagePool { owner.takeUnretainedValue() }

    /// Bytes in the piece.
    public var count: Int { Int(fragment.length) }

    /// Whether the CPU may read the bytes.
    public var isReadable: Bool { baseAddress != nil }

    /// The bytes, for reading inside `body`; nil (and `body` is not called) when the CPU
    /// may not read the memory.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R? {
        guard let baseAddress else { return nil }
        return try body(UnsafeRawBufferPointer(start: baseAddress, count: count))
    }

    /// A reference of its own on `length` bytes at `offset` inside this piece (the chunk
    /// gains a reference). Traps when the range is outside the piece.
    public func piece(offset: Int, length: Int) -> PoolFragment {
        precondition(offset >= 0 && length >= 0 && offset + length <= count,
                     "piece \(offset)+\(length) is outside \(fragment)")
        let sub = NetmemFragment(ref: fragment.ref, offset: fragment.offset + UInt32(offset), length: UInt32(length))
        pool.retainFragment(sub)
        return PoolFragment(pool: pool, fragment: sub, baseAddress: baseAddress.map { $0 + offset })
    }

    /// Ends ownership without dropping the reference: the caller now owns it as a raw
    /// fragment and must give it back with `pool.releaseFragment` (or hand it to a token
    /// table, which does).
    public consuming func take() -> NetmemFragment {
        let f = fragment
        owner.release()
        discard self
        return f
    }
}

extension PagePool {
    /// Sets the reference count of a chunk the caller just allocated whole, so it can be
    /// shared as fragments (each reference dropped with `releaseFragment`; the chunk
    /// recycles with the last). Owner thread, before the chunk is shared. Mirrors
    /// `page_pool_fragment_netmem`.
    public func setFragmentReferences(of ref: NetmemRef, to count: UInt32) {
        checkOwner("setFragmentReferences")
        precondition(count > 0, "a shared chunk needs at least one reference")
        let word = ChunkMeta.word(ref)
        let v = word.pointee.load(ordering: .relaxed)
        precondition(v == handedWord, "setFragmentReferences on \(ref), which pool '\(configuration.name)' has not handed out whole")
        word.pointee.store(handedWord | UInt64(count), ordering: .relaxed)
    }

    /// Wraps one reference the caller owns (from `setFragmentReferences`,
    /// `retainFragment` or `allocateFragment`) as an owned `PoolFragment`; `baseAddress`
    /// is the CPU address of the fragment's first byte, or nil for unreadable memory.
    public func adopt(_ fragment: NetmemFragment, baseAddress: UnsafeRawPointer?) -> PoolFragment {
        PoolFragment(pool: self, fragment: fragment, baseAddress: baseAddress)
    }

    /// Wraps a whole chunk the caller owns (handed out by this pool) as a `PoolBuffer`
    /// that recycles it when it goes away.
    public func adopt(_ ref: NetmemRef) -> PoolBuffer {
        PoolBuffer(pool: self, ref: ref)
    }
}
