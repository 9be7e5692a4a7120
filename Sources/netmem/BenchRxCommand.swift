import ArgumentParser
import NetmemBench
import NetmemSession

struct BenchRxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rx",
        abstract: "Netmem's io_uring receive session beside a plain blocking recv() loop, on loopback.",
        discussion: """
        One process, loopback, the same blocking sender (1 MiB sends; frames of 1 MiB or as \
        large as the ring holds) for each run: a plain \
        recv() into a 256 KiB malloc'd buffer; the receive session in raw mode with a callback \
        (payload lands in pool memory, no copy) and with the async API, its consumer task on \
        the session's RX-thread executor (async_gbps) and on the default executor \
        (async_default_executor_gbps); framed with CRC off \
        and with CRC on. Where iperf3 is installed, one iperf3 TCP stream over loopback too \
        (iperf3_gbps, and iperf3_ratio = netmem_gbps / iperf3_gbps).
        """)

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(parsing: .unconditional, help: "Seconds per receiver, over all rounds.")
    var seconds: Double = 5

    @Option(parsing: .unconditional,
            help: "Rounds: each runs every receiver for seconds/rounds, one after the other, so a slow patch of a noisy machine falls on all of them alike.")
    var rounds: Int = 5

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
        try CLIRange.check("--rounds", rounds, 1...1000)
        guard seconds / Double(rounds) >= 0.1 else {
            throw ValidationError("--seconds \(seconds) over --rounds \(rounds) leaves under 0.1 s per receiver and round; use fewer rounds")
        }
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
        // Frames as large as the ring holds, up to the raw runs' 1 MiB sends.
        let frame = min(message, configuration.largestPayload)
        let slice = seconds / Double(rounds)
        var plain = LoopbackBench.Measurement(), netmem = plain, async = plain, asyncDefault = plain
        var framed = plain, framedCRC = plain
        var iperf3Runs: [Double] = []
        var iperf3Unavailable = IPerf3Baseline.unavailableReason
        if let reason = iperf3Unavailable { CLIOutput.error("netmem bench rx: no iperf3 baseline: \(reason)") }
        for round in 1...rounds {
            if !json && rounds > 1 { CLIOutput.error("netmem bench rx: round \(round) of \(rounds)") }
            plain += try LoopbackBench.plainReceive(seconds: slice, messageSize: message)
            netmem += try await LoopbackBench.sessionReceive(configuration, seconds: slice, messageSize: message,
                                                             framed: false, crc: false, consumer: .callback)
            async += try await LoopbackBench.sessionReceive(configuration, seconds: slice, messageSize: message,
                                                            framed: false, crc: false, consumer: .async)
            asyncDefault += try await LoopbackBench.sessionReceive(configuration, seconds: slice, messageSize: message,
                                                                   framed: false, crc: false, consumer: .asyncDefaultExecutor)
            framed += try await LoopbackBench.sessionReceive(configuration, seconds: slice, messageSize: frame,
                                                             framed: true, crc: false, consumer: .callback)
            framedCRC += try await LoopbackBench.sessionReceive(configuration, seconds: slice, messageSize: frame,
                                                                framed: true, crc: true, consumer: .callback)
            if iperf3Unavailable == nil {
                do { iperf3Runs.append(try IPerf3Baseline.measure(seconds: slice)) } catch {
                    CLIOutput.error("netmem bench rx: no iperf3 baseline: \(error)")
                    iperf3Unavailable = "\(error)"
                }
            }
        }
        let ratio = plain.gbps > 0 ? netmem.gbps / plain.gbps : 0
        // Every round gave iperf3 the same time, so the mean of its rates is its rate.
        let iperf3: Double? = iperf3Unavailable == nil && !iperf3Runs.isEmpty
            ? iperf3Runs.reduce(0, +) / Double(iperf3Runs.count) : nil
        var fields: [(String, Double)] = [
            ("netmem_gbps", netmem.gbps), ("plain_recv_gbps", plain.gbps), ("ratio", ratio),
            ("async_gbps", async.gbps), ("async_ratio", netmem.gbps > 0 ? async.gbps / netmem.gbps : 0),
            ("netmem_cpu_s_per_gb", netmem.cpuPerGB), ("plain_cpu_s_per_gb", plain.cpuPerGB),
            ("async_cpu_s_per_gb", async.cpuPerGB),
            ("async_default_executor_gbps", asyncDefault.gbps),
            ("async_default_executor_ratio", netmem.gbps > 0 ? asyncDefault.gbps / netmem.gbps : 0),
            ("async_default_executor_cpu_s_per_gb", asyncDefault.cpuPerGB),
            ("framed_gbps", framed.gbps), ("framed_cpu_s_per_gb", framed.cpuPerGB),
            ("framed_crc_gbps", framedCRC.gbps), ("framed_crc_cpu_s_per_gb", framedCRC.cpuPerGB),
            ("framed_crc_ratio", framed.gbps > 0 ? framedCRC.gbps / framed.gbps : 0),
        ]
        if let iperf3 {
            fields += [("iperf3_gbps", iperf3), ("iperf3_ratio", iperf3 > 0 ? netmem.gbps / iperf3 : 0)]
        }
        if json {
            print("{" + fields.map { "\"\($0.0)\": \(CLIFormat.fixed($0.1, 3))" }.joined(separator: ", ")
                + ", \"seconds\": \(CLIFormat.fixed(seconds, 1)), \"rounds\": \(rounds), \"chunk\": \(chunk.bytes), \"buffers\": \(buffers), \"provider\": \"\(provider.rawValue)\"}")
        } else {
            for (name, value) in fields { print("\(name) \(CLIFormat.fixed(value, 3))") }
        }
    }
}
