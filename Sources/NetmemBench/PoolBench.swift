import CNetmemLinux
import CNetmemMallocCounter
import Glibc
import Netmem
import Synchronization

/// The measurements of `netmem bench pool`. Each builds its own pool and provider.
package enum PoolBench {
    /// The names `--only` accepts, in the order they run.
    package static let parts = ["fast", "bulk32", "cross-single", "cross-bulk32", "slow", "malloc"]

    static func makePool(chunks: Int, chunkSize: Int = 2048, cacheSize: Int = 128, refillBatch: Int = 64,
                         ringSize: Int? = nil) throws -> PagePool {
        let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks, options: [.populate])
        var config = PagePool.Configuration(provider: provider, poolSize: chunks, name: "bench")
        config.cacheSize = cacheSize
        config.refillBatch = refillBatch
        config.ringSize = ringSize
        return try PagePool(config)
    }

    /// Allocate + direct return of one buffer on the owning thread; also counts heap
    /// allocations made inside the loop.
    package static func fastPath(iterations: Int) throws -> (Double, Double) {
        let pool = try makePool(chunks: 256)
        // Warm up: fill the cache.
        for _ in 0..<1000 { pool.recycle(pool.allocate()!) }
        let mallocsBefore = cnm_thread_malloc_count()
        let t0 = cnm_now_ns()
        for _ in 0..<iterations {
            let r = pool.allocate().unsafelyUnwrapped
            cnm_black_hole(r.rawValue)
            pool.recycle(r)
        }
        let t1 = cnm_now_ns()
        let mallocs = cnm_thread_malloc_count() - mallocsBefore
        precondition(pool.inFlight == 0, "bench leaked buffers")
        return (Double(t1 - t0) / Double(iterations), Double(mallocs) / Double(iterations))
    }

    /// Allocate 32, return 32, on the owning thread.
    package static func bulk32(iterations: Int) throws -> Double {
        let pool = try makePool(chunks: 256)
        let buf = UnsafeMutableBufferPointer<NetmemRef>.allocate(capacity: 32)
        defer { buf.deallocate() }
        for _ in 0..<100 {
            precondition(pool.allocate(into: buf) == 32)
            pool.recycle(UnsafeBufferPointer(buf))
        }
        let t0 = cnm_now_ns()
        for _ in 0..<iterations {
            _ = pool.allocate(into: buf)
            pool.recycle(UnsafeBufferPointer(buf))
        }
        let t1 = cnm_now_ns()
        precondition(pool.inFlight == 0, "bench leaked buffers")
        return Double(t1 - t0) / Double(iterations * 32)
    }

    /// One thread allocates, another returns through the recycle ring (one at a time or in
    /// batches of `batch`). The returning thread either gives the buffers to a
    /// `PoolReturner` (`returner`: a ring reservation per 32 single returns, per 256 in
    /// batches) or calls `PagePool.recycle` (a reservation per buffer or batch). Returns
    /// million buffers per second returned.
    package static func crossThread(batch: Int, seconds: Double, returner: Bool = false) throws -> Double {
        try crossThreadRun(batch: batch, seconds: seconds, census: nil, returner: returner).mops
    }

    /// What the returning thread of a census run recorded: every reference it returned, in
    /// order, and the size of each batch.
    final class Census: @unchecked Sendable {
        let refs: UnsafeMutableBufferPointer<NetmemRef>
        var count = 0
        var batches: [Int] = []
        init(capacity: Int) {
            refs = .allocate(capacity: capacity)
            batches.reserveCapacity(capacity)
        }
        deinit { refs.deallocate() }
        var isFull: Bool { count == refs.count }
    }

    /// The cache lines that move between the two threads per returned buffer, counted from
    /// the addresses of a census run of the bulk cross-thread measurement. Per batch the
    /// returner writes each chunk's metadata word (the owner wrote it when it allocated the
    /// chunk and writes it again at the next allocation) and the recycle-ring slots it
    /// fills (the owner clears them when it drains); per drain the owner writes the ring's
    /// published head, which producers read. Each such line goes to the other core and
    /// back: 2 × (distinct metadata lines + slot lines per batch + drains) / buffers.
    /// Metadata words are 8 to a line from a line-aligned array
    /// (`NetmemArea.metadataAlignment`), ring slots likewise. The tail the returner
    /// reserves on and the pool's read-only fields stay in one core's cache.
    package static func crossThreadCensus(batch: Int) throws -> Double {
        let census = Census(capacity: 1 << 20)
        let run = try crossThreadRun(batch: batch, seconds: 5, census: census)
        var metaLines = 0
        var slotLines = 0
        var position = 0
        var offset = 0
        var seen = Set<UInt64>()
        for n in census.batches {
            seen.removeAll(keepingCapacity: true)
            for i in offset..<(offset + n) {
                let r = census.refs[i]
                seen.insert(UInt64(r.areaID) << 32 | UInt64(r.chunk >> 3))
            }
            metaLines += seen.count
            slotLines += (position + n - 1) / 8 - position / 8 + 1
            position += n
            offset += n
        }
        precondition(offset == census.count, "census lost track of its batches")
        let objects = Double(Swift.max(census.count, 1))
        return 2 * Double(metaLines + slotLines + run.drains) / objects
    }

    static func crossThreadRun(batch: Int, seconds: Double, census: Census?, returner useReturner: Bool = false) throws -> (mops: Double, drains: Int) {
        let chunks = 16384
        let pool = try makePool(chunks: chunks, cacheSize: 256, refillBatch: 256, ringSize: 16384)
        let handoff = HandoffRing(capacity: 8192)
        let stop = Atomic<Bool>(false)
        let returned = Atomic<Int>(0)
        let returner = JoinableThread {
            let local = UnsafeMutableBufferPointer<NetmemRef>.allocate(capacity: 256)
            defer { local.deallocate() }
            var count = 0
            var returner = PoolReturner(pool: pool, capacity: batch == 1 ? 32 : 256)
            while true {
                let got = handoff.pop(into: local)
                if got == 0 {
                    if stop.load(ordering: .acquiring) && handoff.isEmpty { break }
                    cnm_cpu_relax()
                    continue
                }
                if batch == 1 && useReturner {
                    for i in 0..<got { returner.recycle(local[i]) }
                } else if batch == 1 {
                    for i in 0..<got { pool.recycle(local[i]) }
                } else {
                    var i = 0
                    while i < got {
                        let n = Swift.min(batch, got - i)
                        let part = UnsafeBufferPointer(rebasing: local[i..<(i + n)])
                        if let census, census.count + n <= census.refs.count {
                            for j in 0..<n { census.refs[census.count + j] = part[j] }
                            census.count += n
                            census.batches.append(n)
                        }
                        if useReturner { returner.recycle(part) } else { pool.recycle(part) }
                        i += n
                    }
                }
                count += got
            }
            returner.flush()
            returned.store(count, ordering: .releasing)
        }
        let buf = UnsafeMutableBufferPointer<NetmemRef>.allocate(capacity: 256)
        defer { buf.deallocate() }
        let deadline = cnm_now_ns() + UInt64(seconds * 1e9)
        let t0 = cnm_now_ns()
        var handed = 0
        var checks = 0
        while true {
            checks &+= 1
            if checks & 63 == 0 && cnm_now_ns() >= deadline { break }
            // A census run stops once the returner's log would be full.
            if let census, checks & 63 == 0, handed >= census.refs.count { break }
            let n = pool.allocate(into: buf)
            if n == 0 { cnm_cpu_relax(); continue }
            var off = 0
            while off < n {
                off += handoff.push(UnsafeBufferPointer(rebasing: buf[off..<n]))
                if off < n { cnm_cpu_relax() }
            }
            handed += n
        }
        stop.store(true, ordering: .releasing)
        returner.join()
        let t1 = cnm_now_ns()
        let count = returned.load(ordering: .acquiring)
        precondition(count == handed && pool.inFlight == 0, "cross-thread bench lost buffers")
        return (Double(count) / (Double(t1 - t0) / 1e9) / 1e6, pool.stats.alloc.refill)
    }

    /// Allocation straight from the provider: caches and ring empty, one chunk per refill.
    package static func slowPath() throws -> Double {
        let chunks = 4096
        var total: UInt64 = 0
        var count = 0
        for _ in 0..<20 {
            let pool = try makePool(chunks: chunks, cacheSize: 1, refillBatch: 1)
            var refs: [NetmemRef] = []
            refs.reserveCapacity(chunks)
            let t0 = cnm_now_ns()
            for _ in 0..<chunks { refs.append(pool.allocate().unsafelyUnwrapped) }
            total += cnm_now_ns() - t0
            count += chunks
            precondition(pool.stats.alloc.slow == chunks, "slow-path bench did not hit the provider each time")
            pool.destroy()
            for r in refs { pool.recycle(r) }
        }
        return Double(total) / Double(count)
    }

    /// malloc(4096) + free, the baseline.
    package static func mallocFree(iterations: Int) -> Double {
        let t0 = cnm_now_ns()
        for _ in 0..<iterations {
            let p = malloc(4096)
            cnm_black_hole(UInt64(UInt(bitPattern: p)))
            free(p)
        }
        return Double(cnm_now_ns() - t0) / Double(iterations)
    }
}

/// A single-producer single-consumer ring that carries references from the allocating
/// thread to the returning thread in the cross-thread benchmark.
final class HandoffRing: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<NetmemRef>
    private let mask: Int
    private let head = Atomic<Int>(0)  // consumer
    private let pad = (0, 0, 0, 0, 0, 0, 0, 0)
    private let tail = Atomic<Int>(0)  // producer

    init(capacity: Int) {
        precondition(capacity & (capacity - 1) == 0, "handoff capacity must be a power of two")
        slots = .allocate(capacity: capacity)
        mask = capacity - 1
    }
    deinit { slots.deallocate() }

    var isEmpty: Bool { head.load(ordering: .acquiring) == tail.load(ordering: .acquiring) }

    func push(_ refs: UnsafeBufferPointer<NetmemRef>) -> Int {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        let n = Swift.min(refs.count, mask + 1 - (t - h))
        for i in 0..<n { slots[(t + i) & mask] = refs[i] }
        tail.store(t + n, ordering: .releasing)
        return n
    }

    func pop(into out: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        let n = Swift.min(out.count, t - h)
        for i in 0..<n { out[i] = slots[(h + i) & mask] }
        head.store(h + n, ordering: .releasing)
        return n
    }
}
