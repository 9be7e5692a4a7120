import ArgumentParser
import CNetmemLinux
import CNetmemMallocCounter
import Glibc
import Netmem
import NetmemBench
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
            construction, as this machine has no hardware cache counters (counted on the direct path). The \
            returning thread gives buffers to a PoolReturner, which hands them to the recycle ring 32 at a time \
            for single returns and 256 at a time for batches of 32, as DPDK's worker puts into its per-lcore \
            cache (cross_thread_single_mops, cross_thread_bulk32_mops); the *_direct_* figures call \
            PagePool.recycle for each buffer or batch, a ring reservation each.
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
                samples.add("cross_thread_single_mops", try PoolBench.crossThread(batch: 1, seconds: seconds, returner: true), .higher)
                samples.add("cross_thread_single_direct_mops", try PoolBench.crossThread(batch: 1, seconds: seconds), .higher)
            }
            if selected.contains("cross-bulk32") {
                samples.add("cross_thread_bulk32_mops", try PoolBench.crossThread(batch: 32, seconds: seconds, returner: true), .higher)
                samples.add("cross_thread_bulk32_direct_mops", try PoolBench.crossThread(batch: 32, seconds: seconds), .higher)
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
            ("cross_thread_single_direct_vs_dpdk", "cross_thread_single_direct_mops", "dpdk_cross_thread_single_mops"),
            ("cross_thread_bulk32_vs_dpdk", "cross_thread_bulk32_mops", "dpdk_cross_thread_bulk32_mops"),
            ("cross_thread_bulk32_direct_vs_dpdk", "cross_thread_bulk32_direct_mops", "dpdk_cross_thread_bulk32_mops"),
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

/// Standard error, for notes that must not mix with the JSON on standard output.
enum FileHandleStderr {
    static func print(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
