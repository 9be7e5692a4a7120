import ArgumentParser
import NetmemBench
import NetmemSession

struct BenchFairnessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fairness",
        abstract: "Framed receive with senders that would stall each other: a fast sender alone and beside tricklers, then many large-frame senders at once.",
        discussion: """
        One receive session on loopback with recv's defaults (64 × 64 KiB buffers, frames up \
        to 2 MiB). A fast sender's Gbit/s alone, then beside tricklers (a byte every 10 ms, \
        ended by a 5 s frame timeout); then many senders of 4 MiB each in frames of 1 MiB \
        at once. Every frame carries a CRC-32C the receiver checks, and every connection's frames and bytes are counted; the ratio is the fast sender beside tricklers over \
        alone.
        """)

    @Option(parsing: .unconditional, help: "Tricklers beside the fast sender.")
    var tricklers: Int = 4

    @Option(parsing: .unconditional, help: "Senders at once in the last phase.")
    var senders: Int = 200

    @Option(name: .customLong("fast-bytes"), parsing: .unconditional, help: "Bytes the fast sender sends per phase.")
    var fastBytes: CLIByteSize = CLIByteSize(bytes: 1 << 30)

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        try CLIRange.check("--tricklers", tricklers, 0...1000)
        try CLIRange.check("--senders", senders, 1...2000)
        try CLIRange.check("--fast-bytes", fastBytes.bytes, 1...(64 << 30))
    }

    func run() throws {
        CLIStopSignal.install()
        var configuration = ReceiveSession.Configuration(mode: .framed(maxPayload: 2 << 20))
        configuration.partialFrameTimeout = .seconds(5)
        configuration.name = "fairness"
        let r = try FairnessBench.run(configuration, fastBytes: fastBytes.bytes, frame: 64 << 10, tricklers: tricklers,
                                      senders: senders, bytesPerSender: 4 << 20)
        let ratio = r.alone.gbps > 0 ? r.besideTricklers.gbps / r.alone.gbps : 0
        let s = r.statistics
        let fields: [(String, String)] = [
            ("fast_alone_gbps", CLIFormat.fixed(r.alone.gbps, 3)),
            ("fast_beside_tricklers_gbps", CLIFormat.fixed(r.besideTricklers.gbps, 3)),
            ("fast_ratio", CLIFormat.fixed(ratio, 3)),
            ("tricklers", "\(r.tricklers)"), ("frame_timeouts", "\(r.frameTimeouts)"),
            ("many_senders", "\(r.many.connections)"), ("many_gbps", CLIFormat.fixed(r.many.gbps, 3)),
            ("many_intact", "\(r.many.digestsMatched)"),
            ("fast_intact", "\(r.alone.digestsMatched + r.besideTricklers.digestsMatched)"),
            ("collapses", "\(s?.collapses ?? 0)"), ("bytes_staged", "\(s?.bytesStaged ?? 0)"),
            ("admission_waits", "\(s?.admissionWaits ?? 0)"),
        ]
        if json {
            print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        } else {
            for (k, v) in fields { print("\(k) \(v)") }
        }
        if r.many.digestsMatched != r.many.connections || r.alone.digestsMatched + r.besideTricklers.digestsMatched != 2 {
            throw ExitCode(1)
        }
    }
}
