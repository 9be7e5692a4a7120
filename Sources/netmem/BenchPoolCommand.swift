import ArgumentParser
import CNetmemLinux
import CNetmemMallocCounter
import Glibc
import Netmem
import Synchronization

struct BenchPoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Page pool: fast path, bulk, cross-thread returns, slow path, beside malloc/free.",
        discussion: "Targets on a 2-core machine: fast path ≤ 4 ns/pair, bulk-32 ≤ 0.5 ns/object, "
            + "cross-thread single ≥ 100 M/s, cross-thread bulk-32 ≥ 500 M/s, 0 heap allocations on the fast path."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds for each cross-thread measurement.")
    var seconds: Double = 1.0

    @Option(help: "Iterations of the single-thread loops (millions).")
    var millions: Int = 50

    mutating func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600], got \(seconds)") }
        guard millions > 0, millions <= 10_000 else { throw ValidationError("--millions must be in 1...10000, got \(millions)") }
    }

    func run() throws {
        let n = millions * 1_000_000
        var results: [(String, Double)] = []
        func report(_ key: String, _ value: Double) {
            results.append((key, value))
            if !json { print(key.padding(32) + format(value)) }
        }
        if !json { print("netmem bench pool (\(millions) M iterations, \(seconds) s cross-thread)") }

        let (fast, mallocs) = try PoolBench.fastPath(iterations: n)
        report("fast_path_ns_per_pair", fast)
        report("bulk32_ns_per_object", try PoolBench.bulk32(iterations: n / 32))
        report("cross_thread_single_mops", try PoolBench.crossThread(batch: 1, seconds: seconds))
        report("cross_thread_bulk32_mops", try PoolBench.crossThread(batch: 32, seconds: seconds))
        report("slow_path_ns", try PoolBench.slowPath())
        report("malloc_free_4096_ns_per_pair", PoolBench.mallocFree(iterations: n / 2))
        report("fast_path_mallocs", mallocs)
        if json {
            print("{" + results.map { "\"\($0.0)\": \(format($0.1))" }.joined(separator: ", ") + "}")
        } else if cnm_malloc_counter_active() == 0 {
            print("note: the malloc counter is not active, fast_path_mallocs is not measured")
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(Double(Int(v * 1000)) / 1000)
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

/// The measurements of `netmem bench pool`. Each builds its own pool and provider.
enum PoolBench {
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
    static func fastPath(iterations: Int) throws -> (Double, Double) {
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
    static func bulk32(iterations: Int) throws -> Double {
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
    /// batches of `batch`). Returns million buffers per second returned.
    static func crossThread(batch: Int, seconds: Double) throws -> Double {
        let chunks = 16384
        let pool = try makePool(chunks: chunks, cacheSize: 256, refillBatch: 256, ringSize: 16384)
        let handoff = HandoffRing(capacity: 8192)
        let stop = Atomic<Bool>(false)
        let returned = Atomic<Int>(0)
        let returner = BenchThread {
            let local = UnsafeMutableBufferPointer<NetmemRef>.allocate(capacity: 256)
            defer { local.deallocate() }
            var count = 0
            while true {
                let got = handoff.pop(into: local)
                if got == 0 {
                    if stop.load(ordering: .acquiring) && handoff.isEmpty { break }
                    cnm_cpu_relax()
                    continue
                }
                if batch == 1 {
                    for i in 0..<got { pool.recycle(local[i]) }
                } else {
                    var i = 0
                    while i < got {
                        let n = Swift.min(batch, got - i)
                        pool.recycle(UnsafeBufferPointer(rebasing: local[i..<(i + n)]))
                        i += n
                    }
                }
                count += got
            }
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
        return Double(count) / (Double(t1 - t0) / 1e9) / 1e6
    }

    /// Allocation straight from the provider: caches and ring empty, one chunk per refill.
    static func slowPath() throws -> Double {
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
    static func mallocFree(iterations: Int) -> Double {
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

/// A plain thread for benchmarks (the pool's owner must be a fixed thread, which Swift
/// concurrency does not promise).
final class BenchThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<BenchThread>.fromOpaque(arg!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    func join() { pthread_join(thread, nil) }
}
