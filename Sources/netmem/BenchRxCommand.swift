import ArgumentParser
import Logging

struct BenchRxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rx",
        abstract: "Netmem's io_uring receiver beside a plain blocking recv() loop, on loopback.",
        discussion: """
        One process, loopback, the same blocking sender (1 MiB sends) for each run: the \
        Netmem receiver in raw mode (payload lands in pool memory, no copy), a plain recv() \
        into a 256 KiB malloc'd buffer, and the Netmem receiver with framing (CRC off).
        """)

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(help: "Seconds per run.")
    var seconds: Double = 5

    // 16 × 256 KiB consumed incrementally keeps the ring's memory (4 MiB) within the
    // cache the kernel's copy writes into; larger rings measured slower on 2 cores.
    @Option(help: "Chunk (buffer) size of the Netmem receiver.")
    var chunk: CLIByteSize = CLIByteSize(bytes: 256 << 10)

    @Option(help: "Buffers in the provided-buffer ring.")
    var buffers: Int = 16

    @Option(help: "Memory of the Netmem receiver: host, hugepage, memfd.")
    var provider: CLIProviderKind = .host

    func run() throws {
        let logger = CLILogging.bootstrap()
        CLIStopSignal.install()
        var options = CLIReceiveSession.Options()
        options.chunkSize = chunk.bytes
        options.bufferCount = buffers
        options.provider = provider
        let message = 1 << 20
        let plain = try CLILoopback.plainReceive(seconds: seconds, messageSize: message)
        let netmem = try CLILoopback.netmemReceive(seconds: seconds, messageSize: message, framed: false, options: options, logger: logger)
        let framed = try CLILoopback.netmemReceive(seconds: seconds, messageSize: message, framed: true, options: options, logger: logger)
        let ratio = plain.gbps > 0 ? netmem.gbps / plain.gbps : 0
        let fields: [(String, Double)] = [
            ("netmem_gbps", netmem.gbps), ("plain_recv_gbps", plain.gbps), ("ratio", ratio),
            ("netmem_cpu_s_per_gb", netmem.cpuPerGB), ("plain_cpu_s_per_gb", plain.cpuPerGB),
            ("framed_gbps", framed.gbps), ("framed_cpu_s_per_gb", framed.cpuPerGB),
        ]
        if json {
            print("{" + fields.map { "\"\($0.0)\": \(CLIFormat.fixed($0.1, 3))" }.joined(separator: ", ")
                + ", \"seconds\": \(CLIFormat.fixed(seconds, 1)), \"chunk\": \(chunk.bytes), \"buffers\": \(buffers), \"provider\": \"\(provider.rawValue)\"}")
        } else {
            for (name, value) in fields { print("\(name) \(CLIFormat.fixed(value, 3))") }
        }
    }
}
