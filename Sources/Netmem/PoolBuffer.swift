/// A chunk leased from a pool that returns itself when it goes away. For code that
/// prefers ownership in types to the raw-handle API (`allocate` / `recycle`).
public struct PoolBuffer: ~Copyable, @unchecked Sendable {
    /// Unmanaged so that `take()` can end the lease without a return; retained by `init`.
    private let pool: Unmanaged<PagePool>
    /// The leased chunk. The lease returns it to the pool when it ends; do not `recycle` it
    /// yourself unless you `take()` it.
    public let ref: NetmemRef

    init(pool: PagePool, ref: NetmemRef) {
        self.pool = Unmanaged.passRetained(pool)
        self.ref = ref
    }

    deinit {
        pool.takeUnretainedValue().recycle(ref)
        pool.release()
    }

    /// Ends the lease without returning the chunk: the caller now owns the raw reference
    /// and must `recycle` it to the pool itself.
    public consuming func take() -> NetmemRef {
        let ref = self.ref
        pool.release()
        discard self
        return ref
    }

    /// The chunk's bytes; traps when its area is not readable by the CPU.
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try ref.area.withUnsafeMutableBytes(of: ref, body)
    }
}

extension PagePool {
    /// Leases one chunk as an owned buffer that returns itself; nil when the pool is
    /// exhausted. Owner thread only.
    public func lease() -> PoolBuffer? {
        allocate().map { PoolBuffer(pool: self, ref: $0) }
    }
}
