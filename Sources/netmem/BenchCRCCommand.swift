import ArgumentParser
import CNetmemLinux
import Netmem
import NetmemFraming

struct BenchCRCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crc",
        abstract: "CRC-32C throughput: the code checksum uses beside one crc32 chain and the tables, same buffer, same run.",
        discussion: """
            Checksums one buffer (in memory the size of --size, filled with random bytes) over and over for \\
            --seconds per implementation, --repeat times in turn; the best run of each counts. crc32c_gbps is \\
            what CRC32C.checksum uses on this CPU (three crc32 chains joined with pclmulqdq where the CPU has \\
            both), crc32c_single_chain_gbps the single crc32 chain it replaced, crc32c_tables_gbps the \\
            slicing-by-8 fallback; speedup is crc32c_gbps / crc32c_single_chain_gbps. The checksums of all \\
            three must agree or the bench fails.
            """
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Bytes per checksum call.")
    var size: Int = 256 * 1024

    @Option(help: "Seconds per implementation per run.")
    var seconds: Double = 0.5

    @Option(help: "Runs; the best of each implementation counts.")
    var `repeat`: Int = 3

    mutating func validate() throws {
        guard size >= 1, size <= 1 << 30 else { throw ValidationError("--size must be 1 to 1073741824 bytes, got \(size)") }
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60], got \(seconds)") }
        guard `repeat` >= 1, `repeat` <= 100 else { throw ValidationError("--repeat must be in 1...100, got \(`repeat`)") }
    }

    func run() throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        var rng = SplitMix64(seed: 0xC2C_BE4C)
        for i in 0..<size { buffer[i] = UInt8.random(in: 0...255, using: &rng) }
        let bytes = UnsafeRawBufferPointer(buffer)

        typealias Kernel = (UnsafeRawBufferPointer) -> UInt32
        let kernels: [(String, Kernel)] = [
            ("crc32c_gbps", { CRC32C.checksum($0) }),
            ("crc32c_three_chains_gbps", { CRC32C.threeChainChecksum($0) }),
            ("crc32c_single_chain_gbps", { CRC32C.singleChainChecksum($0) }),
            ("crc32c_tables_gbps", { CRC32C.portableChecksum($0) }),
        ]
        let expected = CRC32C.portableChecksum(bytes)
        var best = [Double](repeating: 0, count: kernels.count)
        for _ in 0..<`repeat` {
            for (k, (name, kernel)) in kernels.enumerated() {
                var calls = 0
                var mismatch = false
                let t0 = cnm_now_ns()
                let deadline = t0 + UInt64(seconds * 1e9)
                var now = t0
                repeat {
                    if kernel(bytes) != expected { mismatch = true }
                    calls += 1
                    now = cnm_now_ns()
                } while now < deadline
                if mismatch { throw CLIError("\(name): the checksum differs from the tables' (\(expected))") }
                let gbps = Double(calls * size) * 8 / Double(now - t0)
                best[k] = Swift.max(best[k], gbps)
            }
        }
        var results: [(String, Double)] = zip(kernels.map(\.0), best).map { ($0, $1) }
        results.append(("speedup", best[2] > 0 ? best[0] / best[2] : 0))
        results.append(("size", Double(size)))
        if json {
            let fields = ["\"implementation\": \"\(CRC32C.implementation)\""]
                + results.map { "\"\($0.0)\": \(format($0.1))" }
            print("{" + fields.joined(separator: ", ") + "}")
        } else {
            print("netmem bench crc: \(size)-byte buffer, \(seconds) s per implementation, best of \(`repeat`); "
                  + "checksum uses \(CRC32C.implementation)")
            for (key, value) in results { print(key.padding(28) + format(value)) }
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(Double(Int(v * 1000)) / 1000)
    }
}
