import ArgumentParser
import NetmemBench

struct BenchChurnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churn",
        abstract: "Many short connections through one receive session: memory, descriptors and threads stay flat.",
        discussion: """
        Each connection sends one small frame (or a few raw bytes) and closes. Resident memory \
        is sampled after the warm-up connections and at the end; descriptors and threads are \
        counted before the session and after it ended.
        """)

    @Option(parsing: .unconditional, help: "Connections to open and close.")
    var connections: Int = 100_000

    @Option(parsing: .unconditional, help: "Connections before the first memory sample.")
    var warmup: Int = 10_000

    @Flag(help: "Raw bytes instead of frames.")
    var raw = false

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        try CLIRange.check("--connections", connections, 1...10_000_000)
        try CLIRange.check("--warmup", warmup, 0...(connections - 1))
    }

    func run() throws {
        CLIStopSignal.install()
        let r = try ChurnBench.run(connections: connections, warmup: warmup, framed: !raw)
        let growth = r.rssAtEndKiB - r.rssAfterWarmupKiB
        let fields: [(String, String)] = [
            ("connections", "\(r.connections)"), ("failed", "\(r.failed)"), ("seconds", CLIFormat.fixed(r.seconds, 2)),
            ("connections_per_s", CLIFormat.fixed(Double(r.connections) / max(r.seconds, 1e-9), 0)),
            ("rss_after_warmup_kib", "\(r.rssAfterWarmupKiB)"), ("rss_at_end_kib", "\(r.rssAtEndKiB)"),
            ("rss_growth_kib", "\(growth)"),
            ("bytes_per_connection_after_warmup", CLIFormat.fixed(Double(growth * 1024) / Double(max(1, r.connections - warmup)), 2)),
            ("descriptors_before", "\(r.descriptorsBefore)"), ("descriptors_after", "\(r.descriptorsAfter)"),
            ("threads_before", "\(r.threadsBefore)"), ("threads_after", "\(r.threadsAfter)"),
            ("in_flight_at_end", "\(r.inFlightAtEnd)"),
            ("heap_blocks_growth", "\(r.liveBlocksAtEnd - r.liveBlocksAfterWarmup)"),
            ("heap_in_use_growth_bytes", "\(r.heapInUseAtEnd - r.heapInUseAfterWarmup)"),
        ]
        if json {
            print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        } else {
            for (k, v) in fields { print("\(k) \(v)") }
        }
        if r.failed > 0 || r.inFlightAtEnd != 0 || r.descriptorsAfter > r.descriptorsBefore { throw ExitCode(1) }
    }
}
