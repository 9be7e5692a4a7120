import Glibc

/// DPDK's rte_mempool counterpart of this bench (`mempool_bench.c`), built with Debian's
/// libdpdk-dev into the temporary directory and run as a child process that prints one
/// JSON line of `dpdk_*` figures.
package struct DPDKMempoolProgram {
    package enum Located {
        case found(DPDKMempoolProgram)
        case absent(String)
    }

    package let binary: String

    package static func locate(directory: String?) -> Located {
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
    package func run(iterations: Int) throws -> [(String, Double)] {
        guard let pipe = popen("'\(binary)' \(iterations) 2>/dev/null", "r") else {
            throw LoopbackBench.BenchError("could not start \(binary)")
        }
        var out = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            out += buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        let status = pclose(pipe)
        guard status == 0, let line = out.split(separator: "\n").first(where: { $0.hasPrefix("{") }) else {
            throw LoopbackBench.BenchError("\(binary) failed (status \(status)): \(out.prefix(200))")
        }
        return try Self.parse(String(line))
    }

    /// The pairs of a flat JSON object of numbers: `{"a": 1.5, "b": 2}`.
    package static func parse(_ line: String) throws -> [(String, Double)] {
        var pairs: [(String, Double)] = []
        let body = line.drop(while: { $0 != "{" }).dropFirst().prefix(while: { $0 != "}" })
        for item in body.split(separator: ",") {
            let kv = item.split(separator: ":", maxSplits: 1)
            guard kv.count == 2 else { throw LoopbackBench.BenchError("DPDK program printed '\(item)', not \"key\": number") }
            let key = kv[0].trimmingCharacters().trimmingQuotes()
            guard let value = Double(kv[1].trimmingCharacters()) else {
                throw LoopbackBench.BenchError("DPDK program printed '\(item)', not \"key\": number")
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
