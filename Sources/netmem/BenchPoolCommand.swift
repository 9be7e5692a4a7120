import ArgumentParser
import CNetmemLinux
import CNetmemMallocCounter
import Glibc
import Netmem
import Synchronization

struct BenchPoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Page pool: fast path, bulk, cross-thread returns, slow path, beside malloc/free and DPDK's rte_mempool.",
        discussion: """
            Each measurement runs --repeat times; the best run of each counts (least time, most buffers per \
            second), on both sides alike. When the DPDK program (mempool_bench.c, see --dpdk) is there and \
            libdpdk-dev is installed, it is built once and run after each of Netmem's runs, its figures are \
            printed as dpdk_* keys and the ratios as *_vs_dpdk (Netmem / DPDK: time for the ns figures, where \
            below 1 is better; throughput for the mops figures, where above 1 is better). Targets: \
            fast_path_vs_dpdk ≤ 0.5, bulk32_vs_dpdk ≤ 1.0, cross_thread_single_vs_dpdk ≥ 1.1, \
            cross_thread_bulk32_vs_dpdk ≥ 1.0, cross_thread_bulk32_lines_per_object < 1, 0 heap allocations on \
            the fast path. cross_thread_bulk32_lines_per_object counts, from the addresses a separate census \
            run used, the cache lines the returning thread writes that the owner also writes (chunk metadata, \
            recycle-ring slots, the ring's published head), each moving there and back: a count by \
            construction, as this machine has no hardware cache counters.
            """
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds for each cross-thread measurement.")
    var seconds: Double = 1.0

    @Option(help: "Iterations of the single-thread loops (millions).")
    var millions: Int = 50

    @Option(help: "Runs of each measurement (and of the DPDK program); the best counts.")
    var `repeat`: Int = 3

    @Option(help: "Run only these measurements (comma-separated: \(PoolBench.parts.joined(separator: ", "))), e.g. to profile one under valgrind.")
    var only: String?

    @Option(help: "Directory holding DPDK's mempool_bench.c (default: $NETMEM_DPDK_MEMPOOL, else ../shared/bench/dpdk-mempool).")
    var dpdk: String?

    @Flag(help: "Do not run the DPDK program even when it is there.")
    var noDpdk = false

    mutating func validate() throws {
        if let only {
            for part in only.split(separator: ",") where !PoolBench.parts.contains(String(part)) {
                throw ValidationError("--only: unknown measurement '\(part)' (known: \(PoolBench.parts.joined(separator: ", ")))")
            }
        }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600], got \(seconds)") }
        guard millions > 0, millions <= 10_000 else { throw ValidationError("--millions must be in 1...10000, got \(millions)") }
        guard `repeat` >= 1, `repeat` <= 100 else { throw ValidationError("--repeat must be in 1...100, got \(`repeat`)") }
    }

    func run() throws {
        let n = millions * 1_000_000
        let selected = Set((only ?? PoolBench.parts.joined(separator: ",")).split(separator: ",").map(String.init))
        var dpdkProgram: DPDKMempoolProgram?
        if !noDpdk {
            switch DPDKMempoolProgram.locate(directory: dpdk) {
            case .found(let program): dpdkProgram = program
            case .absent(let why): if !json || dpdk != nil { FileHandleStderr.print("note: no DPDK figures: \(why)") }
            }
        }
        if !json {
            print("netmem bench pool (\(millions) M iterations, \(seconds) s cross-thread, best of \(`repeat`)"
                  + (dpdkProgram != nil ? ", beside DPDK rte_mempool)" : ")"))
        }
        var samples = BenchSamples()
        for _ in 0..<`repeat` {
            if selected.contains("fast") {
                let (fast, m) = try PoolBench.fastPath(iterations: n)
                samples.add("fast_path_ns_per_pair", fast, .lower)
                samples.add("fast_path_mallocs", m, .higher)
            }
            if selected.contains("bulk32") { samples.add("bulk32_ns_per_object", try PoolBench.bulk32(iterations: n / 32), .lower) }
            if selected.contains("cross-single") {
                samples.add("cross_thread_single_mops", try PoolBench.crossThread(batch: 1, seconds: seconds), .higher)
            }
            if selected.contains("cross-bulk32") {
                samples.add("cross_thread_bulk32_mops", try PoolBench.crossThread(batch: 32, seconds: seconds), .higher)
            }
            if selected.contains("slow") { samples.add("slow_path_ns", try PoolBench.slowPath(), .lower) }
            if selected.contains("malloc") { samples.add("malloc_free_4096_ns_per_pair", PoolBench.mallocFree(iterations: n / 2), .lower) }
            if let dpdkProgram {
                for (key, value) in try dpdkProgram.run(iterations: n) {
                    let name = key.hasPrefix("dpdk_") ? key : "dpdk_" + key
                    samples.add(name, value, name.hasSuffix("_mops") ? .higher : .lower)
                }
            }
        }
        if selected.contains("cross-bulk32") {
            samples.add("cross_thread_bulk32_lines_per_object", try PoolBench.crossThreadCensus(batch: 32), .lower)
        }
        let ratios: [(String, String, String)] = [
            ("fast_path_vs_dpdk", "fast_path_ns_per_pair", "dpdk_get_put_ns_per_pair"),
            ("bulk32_vs_dpdk", "bulk32_ns_per_object", "dpdk_bulk32_ns_per_object"),
            ("cross_thread_single_vs_dpdk", "cross_thread_single_mops", "dpdk_cross_thread_single_mops"),
            ("cross_thread_bulk32_vs_dpdk", "cross_thread_bulk32_mops", "dpdk_cross_thread_bulk32_mops"),
        ]
        var results = samples.best
        for (name, ours, theirs) in ratios {
            if let a = samples.value(ours), let b = samples.value(theirs), b > 0 { results.append((name, a / b)) }
        }
        if json {
            print("{" + results.map { "\"\($0.0)\": \(format($0.1))" }.joined(separator: ", ") + "}")
        } else {
            for (key, value) in results { print(key.padding(40) + format(value)) }
            if cnm_malloc_counter_active() == 0 {
                print("note: the malloc counter is not active, fast_path_mallocs is not measured")
            }
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(Double(Int(v * 1000)) / 1000)
    }
}

/// Samples of named figures over repeated runs; the best of each is reported.
struct BenchSamples {
    enum Better { case lower, higher }
    private var order: [String] = []
    private var values: [String: (Double, Better)] = [:]

    mutating func add(_ key: String, _ value: Double, _ better: Better) {
        guard let (old, b) = values[key] else {
            order.append(key)
            values[key] = (value, better)
            return
        }
        values[key] = (b == .lower ? Swift.min(old, value) : Swift.max(old, value), b)
    }

    func value(_ key: String) -> Double? { values[key]?.0 }

    var best: [(String, Double)] { order.map { ($0, values[$0]!.0) } }
}

/// Standard error, for notes that must not mix with the JSON on standard output.
enum FileHandleStderr {
    static func print(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}

/// DPDK's rte_mempool counterpart of this bench (`mempool_bench.c`), built with Debian's
/// libdpdk-dev into the temporary directory and run as a child process that prints one
/// JSON line of `dpdk_*` figures.
struct DPDKMempoolProgram {
    enum Located {
        case found(DPDKMempoolProgram)
        case absent(String)
    }

    let binary: String

    static func locate(directory: String?) -> Located {
        let dir = directory ?? ProcessInfoEnv.get("NETMEM_DPDK_MEMPOOL") ?? "../shared/bench/dpdk-mempool"
        let source = dir + "/mempool_bench.c"
        guard access(source, R_OK) == 0 else { return .absent("\(source) not found (--dpdk DIR names its directory)") }
        guard system("pkg-config --exists libdpdk >/dev/null 2>&1") == 0 else {
            return .absent("libdpdk-dev is not installed (apt-get install libdpdk-dev pkg-config)")
        }
        let tmp = ProcessInfoEnv.get("TMPDIR") ?? "/tmp"
        let binary = tmp + "/netmem-dpdk-mempool-bench"
        var src = stat(), bin = stat()
        let fresh = stat(source, &src) == 0 && stat(binary, &bin) == 0 && bin.st_mtim.tv_sec > src.st_mtim.tv_sec
        if !fresh {
            let build = "cc -O2 -o '\(binary)' '\(source)' $(pkg-config --cflags --libs libdpdk) >/dev/null 2>&1"
            guard system(build) == 0 else { return .absent("building \(source) failed: \(build)") }
        }
        return .found(DPDKMempoolProgram(binary: binary))
    }

    /// Runs the program once with `iterations` single-thread iterations; its figures.
    func run(iterations: Int) throws -> [(String, Double)] {
        guard let pipe = popen("'\(binary)' \(iterations) 2>/dev/null", "r") else {
            throw CLIError("could not start \(binary)")
        }
        var out = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            out += buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        let status = pclose(pipe)
        guard status == 0, let line = out.split(separator: "\n").first(where: { $0.hasPrefix("{") }) else {
            throw CLIError("\(binary) failed (status \(status)): \(out.prefix(200))")
        }
        return try Self.parse(String(line))
    }

    /// The pairs of a flat JSON object of numbers: `{"a": 1.5, "b": 2}`.
    static func parse(_ line: String) throws -> [(String, Double)] {
        var pairs: [(String, Double)] = []
        let body = line.drop(while: { $0 != "{" }).dropFirst().prefix(while: { $0 != "}" })
        for item in body.split(separator: ",") {
            let kv = item.split(separator: ":", maxSplits: 1)
            guard kv.count == 2 else { throw CLIError("DPDK program printed '\(item)', not \"key\": number") }
            let key = kv[0].trimmingCharacters().trimmingQuotes()
            guard let value = Double(kv[1].trimmingCharacters()) else {
                throw CLIError("DPDK program printed '\(item)', not \"key\": number")
            }
            pairs.append((key, value))
        }
        return pairs
    }
}

enum ProcessInfoEnv {
    static func get(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
}

extension String {
    func trimmingQuotes() -> String { String(self.drop(while: { $0 == "\"" }).reversed().drop(while: { $0 == "\"" }).reversed()) }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

/// The measurements of `netmem bench pool`. Each builds its own pool and provider.
enum PoolBench {
    /// The names `--only` accepts, in the order they run.
    static let parts = ["fast", "bulk32", "cross-single", "cross-bulk32", "slow", "malloc"]

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
        try crossThreadRun(batch: batch, seconds: seconds, census: nil).mops
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
    static func crossThreadCensus(batch: Int) throws -> Double {
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

    static func crossThreadRun(batch: Int, seconds: Double, census: Census?) throws -> (mops: Double, drains: Int) {
        let chunks = 16384
        let pool = try makePool(chunks: chunks, cacheSize: 256, refillBatch: 256, ringSize: 16384)
        let handoff = HandoffRing(capacity: 8192)
        let stop = Atomic<Bool>(false)
        let returned = Atomic<Int>(0)
        let returner = JoinableThread {
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
                        let part = UnsafeBufferPointer(rebasing: local[i..<(i + n)])
                        if let census, census.count + n <= census.refs.count {
                            for j in 0..<n { census.refs[census.count + j] = part[j] }
                            census.count += n
                            census.batches.append(n)
                        }
                        pool.recycle(part)
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
