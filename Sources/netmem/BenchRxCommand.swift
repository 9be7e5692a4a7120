import ArgumentParser
import NetmemBench
import NetmemSession

struct BenchRxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rx",
        abstract: "Netmem's io_uring receive session beside a plain blocking recv() loop, on loopback.",
        discussion: """
        One process, loopback, the same blocking sender (1 MiB sends) for each run: a plain \
        recv() into a 256 KiB malloc'd buffer; the receive session in raw mode with a callback \
        (payload lands in pool memory, no copy) and with the async API; framed with CRC off \
        and with CRC on. Where iperf3 is installed, one iperf3 TCP stream over loopback too \
        (iperf3_gbps, and iperf3_ratio = netmem_gbps / iperf3_gbps).
        """)

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(parsing: .unconditional, help: "Seconds per run.")
    var seconds: Double = 5

    // 16 × 256 KiB consumed incrementally keeps the ring's memory (4 MiB) within the
    // cache the kernel's copy writes into; larger rings measured slower on 2 cores.
    @Option(parsing: .unconditional, help: "Chunk (buffer) size of the Netmem receiver.")
    var chunk: CLIByteSize = CLIByteSize(bytes: 256 << 10)

    @Option(parsing: .unconditional, help: "Buffers in the provided-buffer ring.")
    var buffers: Int = 16

    @Option(help: "Memory of the Netmem receiver: host, hugepage, memfd.")
    var provider: CLIProviderKind = .host

    func validate() throws {
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be more than 0 and at most 3600") }
        try CLIRange.check("--buffers", buffers, 1...32768)
        try CLIRange.chunk(chunk)
    }

    func run() async throws {
        CLIStopSignal.install()
        var configuration = ReceiveSession.Configuration()
        configuration.memory = try CLIMemoryProvider.standard(provider).sessionMemory(landing: .pinned)
        configuration.chunkSize = chunk.bytes
        configuration.bufferCount = buffers
        configuration.name = "bench"
        let message = 1 << 20
        let plain = try LoopbackBench.plainReceive(seconds: seconds, messageSize: message)
        let netmem = try await LoopbackBench.sessionReceive(configuration, seconds: seconds, messageSize: message,
                                                            framed: false, crc: false, consumer: .callback)
        let async = try await LoopbackBench.sessionReceive(configuration, seconds: seconds, messageSize: message,
                                                           framed: false, crc: false, consumer: .async)
        let framed = try await LoopbackBench.sessionReceive(configuration, seconds: seconds, messageSize: message,
                                                            framed: true, crc: false, consumer: .callback)
        let framedCRC = try await LoopbackBench.sessionReceive(configuration, seconds: seconds, messageSize: message,
                                                               framed: true, crc: true, consumer: .callback)
        let ratio = plain.gbps > 0 ? netmem.gbps / plain.gbps : 0
        var iperf3: Double?
        if let reason = IPerf3Baseline.unavailableReason {
            CLIOutput.error("netmem bench rx: no iperf3 baseline: \(reason)")
        } else {
            do { iperf3 = try IPerf3Baseline.measure(seconds: seconds) } catch {
                CLIOutput.error("netmem bench rx: no iperf3 baseline: \(error)")
            }
        }
        var fields: [(String, Double)] = [
            ("netmem_gbps", netmem.gbps), ("plain_recv_gbps", plain.gbps), ("ratio", ratio),
            ("async_gbps", async.gbps), ("async_ratio", netmem.gbps > 0 ? async.gbps / netmem.gbps : 0),
            ("netmem_cpu_s_per_gb", netmem.cpuPerGB), ("plain_cpu_s_per_gb", plain.cpuPerGB),
            ("async_cpu_s_per_gb", async.cpuPerGB),
            ("framed_gbps", framed.gbps), ("framed_cpu_s_per_gb", framed.cpuPerGB),
            ("framed_crc_gbps", framedCRC.gbps), ("framed_crc_cpu_s_per_gb", framedCRC.cpuPerGB),
            ("framed_crc_ratio", framed.gbps > 0 ? framedCRC.gbps / framed.gbps : 0),
        ]
        if let iperf3 {
            fields += [("iperf3_gbps", iperf3), ("iperf3_ratio", iperf3 > 0 ? netmem.gbps / iperf3 : 0)]
        }
        if json {
            print("{" + fields.map { "\"\($0.0)\": \(CLIFormat.fixed($0.1, 3))" }.joined(separator: ", ")
                + ", \"seconds\": \(CLIFormat.fixed(seconds, 1)), \"chunk\": \(chunk.bytes), \"buffers\": \(buffers), \"provider\": \"\(provider.rawValue)\"}")
        } else {
            for (name, value) in fields { print("\(name) \(CLIFormat.fixed(value, 3))") }
        }
    }
}
