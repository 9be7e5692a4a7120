import ArgumentParser
import CNetmemLinux
import Netmem
import NetmemDevice

struct BenchDevmemCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devmem",
        abstract: "Device-memory bindings: token return cost and memory held per payload byte.",
        discussion: "dontneed_ns_per_token returns tokens in calls of 128 (one range each, the kernel's "
            + "limit on ranges); held_bytes_per_payload_byte carves 1448-byte fragments from 64 KiB chunks "
            + "of a bound memfd region (target ≤ 1.10)."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(parsing: .unconditional, help: "Tokens returned in the timed part (thousands).")
    var thousands: Int = 2000

    mutating func validate() throws {
        guard thousands > 0, thousands <= 100_000 else { throw ValidationError("--thousands must be in 1...100000, got \(thousands)") }
    }

    func run() throws {
        let (ns, ratio) = try DevmemBench.run(tokens: thousands * 1000)
        if json {
            print("{\"dontneed_ns_per_token\": \(Double(Int(ns * 1000)) / 1000), \"held_bytes_per_payload_byte\": \(Double(Int(ratio * 10000)) / 10000)}")
        } else {
            print("netmem bench devmem (\(thousands) k tokens)")
            print("dontneed_ns_per_token".padding(32) + String(Double(Int(ns * 1000)) / 1000))
            print("held_bytes_per_payload_byte".padding(32) + String(Double(Int(ratio * 10000)) / 10000))
        }
    }
}

enum DevmemBench {
    static func run(tokens: Int) throws -> (Double, Double) {
        let queue = ReceiveQueue(interface: "bench", index: 0)
        let region = try DeviceMemoryRegion.memfd(size: 256 << 20, segments: 4)
        let binding = try DevmemBinding(region: region, queues: [queue], chunkSize: 65536, registry: BindingRegistry())
        let pool = try binding.makePool(for: queue, poolSize: binding.chunkCount, fragmentSize: 1500)
        let consumer = binding.makeConsumer(name: "bench")

        // Memory held per payload byte: 100 000 fragments of 1448 bytes.
        var frags: [Fragment] = []
        frags.reserveCapacity(100_000)
        for _ in 0..<100_000 {
            guard let f = pool.allocateFragment(length: 1448) else { throw DeviceMemoryError.exporter("region too small for the bench") }
            frags.append(binding.deliver(f, from: pool, to: consumer))
        }
        let ratio = Double(pool.inFlight * 65536) / Double(frags.count * 1448)

        // Token return: receive (untimed), then give back 128 per call (timed).
        var total: UInt64 = 0
        var returned = 0
        var pending = frags.map(\.token)
        frags.removeAll()
        var ranges: [TokenRange] = []
        ranges.reserveCapacity(128)
        while returned < tokens {
            while pending.count < 128 * 64 {
                guard let f = pool.allocateFragment(length: 1448) else { break }
                pending.append(binding.deliver(f, from: pool, to: consumer).token)
            }
            let t0 = cnm_now_ns()
            var i = 0
            while i + 128 <= pending.count {
                ranges.removeAll(keepingCapacity: true)
                for t in pending[i..<(i + 128)] { ranges.append(TokenRange(token: t)) }
                returned += try consumer.dontNeed(ranges)
                i += 128
            }
            total += cnm_now_ns() - t0
            pending.removeFirst(i)
        }
        consumer.close()
        binding.unbind()
        pool.destroy()
        precondition(binding.isFreed, "bench leaked chunks: \(binding.report)")
        return (Double(total) / Double(returned), ratio)
    }
}
