import ArgumentParser
import Glibc
import Logging
import NetmemFraming
import NetmemMetrics
import NetmemSession
import NetmemURing
import SystemPackage

struct RecvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recv",
        abstract: "Receive TCP streams into provider memory through io_uring (raw bytes or Netmem frames).",
        discussion: """
        Raw mode (the default) takes any TCP sender; --sha256 prints each connection's digest, \
        so `socat`/`nc` senders can be checked against the file they sent. --framed parses the \
        Netmem frame format: headers are copied to host memory, payload stays where it landed, \
        CRC-32C is verified when the sender set it. A connection with bad input ends with an \
        error naming what was wrong; other connections go on. Ctrl-C ends cleanly.
        """)

    @Option(help: "Address to listen on, ADDR:PORT.")
    var listen: String

    @Flag(help: "Parse the Netmem frame format instead of raw bytes.")
    var framed = false

    @Option(help: "Memory to land data in: host, hugepage, memfd (a region bound through a binding), cuda[:N] (GPU), cuda:standin (GPU paths on host memory).")
    var provider: CLIMemoryProvider = .standard(.host)

    @Option(name: .customLong("gpu-landing"), help: "With a cuda provider: pinned (GPU reads pinned host memory in place, then unpacks) or bounce (host chunks copied to the GPU).")
    var gpuLanding: CLIGPULanding?

    @Option(parsing: .unconditional, help: "Chunk (buffer) size, a power of two from 4K to 2M.")
    var chunk: CLIByteSize = CLIByteSize(bytes: 64 << 10)

    @Option(parsing: .unconditional, help: "Buffers in the kernel's provided-buffer ring (1 to 32768).")
    var buffers: Int = 64

    @Option(parsing: .unconditional, help: "Scatter-gather segments of the memfd region (--provider memfd), 1 to 4096.")
    var segments: Int = 3

    @Flag(help: "Print the SHA-256 of each connection's bytes (payload, when framed).")
    var sha256 = false

    @Option(name: .customLong("max-payload"), parsing: .unconditional, help: "Largest frame payload accepted (default: half the ring's memory, the most it can assemble).")
    var maxPayload: CLIByteSize?

    @Option(name: .customLong("frame-timeout"), parsing: .unconditional, help: "Seconds a frame may stay incomplete before its connection is ended (framed).")
    var frameTimeout: Double = 60

    @Option(help: "Serve Prometheus metrics on ADDR:PORT (GET /metrics).")
    var metrics: String?

    @Option(parsing: .unconditional, help: "Stop after this many seconds.")
    var duration: Double?

    @Option(parsing: .unconditional, help: "Stop after this many connections ended.")
    var connections: Int = 0

    @Flag(name: .long, help: "Debug logging.")
    var verbose = false

    func validate() throws {
        try CLIRange.check("--buffers", buffers, 1...32768)
        try CLIRange.check("--segments", segments, 1...4096)
        try CLIRange.check("--connections", connections, 0...Int(Int32.max))
        try CLIRange.chunk(chunk)
        if let duration { guard duration > 0, duration.isFinite else { throw ValidationError("--duration must be a positive number of seconds") } }
        guard frameTimeout > 0, frameTimeout <= 86400, frameTimeout.isFinite else {
            throw ValidationError("--frame-timeout \(frameTimeout) is out of range: it must be more than 0 and at most 86400 seconds")
        }
        if gpuLanding != nil && provider.gpu == nil {
            throw ValidationError("--gpu-landing needs a cuda provider (--provider cuda[:N] or cuda:standin)")
        }
        if segments != 3 && provider != .standard(.memfd) {
            throw ValidationError("--segments applies to --provider memfd only")
        }
    }

    func run() throws {
        let logger = CLILogging.bootstrap(verbose: verbose)
        CLIStopSignal.install()
        var configuration = ReceiveSession.Configuration(listen: try parseAddress(listen),
                                                         memory: try provider.sessionMemory(landing: gpuLanding ?? .pinned))
        configuration.chunkSize = chunk.bytes
        configuration.bufferCount = buffers
        configuration.segments = segments
        configuration.partialFrameTimeout = .milliseconds(Int(frameTimeout * 1000))
        configuration.name = "recv"
        if framed { configuration.mode = .framed(maxPayload: maxPayload?.bytes ?? configuration.largestPayload) }
        let session: ReceiveSession
        do { session = try ReceiveSession(configuration) } catch { throw CLIError("\(error)") }
        if sha256 && session.region.access != .mapped {
            throw CLIError("--sha256 reads the payload where it lands, and \(provider) memory is not readable by the CPU")
        }
        var options = CLIReceiveConsumer.Options()
        options.sha256 = sha256
        options.stopAfterConnections = connections
        let consumer = try CLIReceiveConsumer(session: session, options: options, logger: logger)
        var server: MetricsServer?
        if let metrics {
            let exporter = SessionMetrics(session: session)
            do { server = try MetricsServer(address: parseAddress(metrics), render: exporter.render) } catch {
                throw CLIError("\(error)")
            }
            logger.info("metrics on http://\(server!.address)/metrics")
        }
        defer { server?.stop() }
        let listening = "listening on \(session.localAddress!) (\(framed ? "framed" : "raw"), \(provider.rawValue) memory, "
            + "\(CLIFormat.bytes(chunk.bytes)) chunks × \(buffers))"
        logger.info("\(listening)")
        let start = CLIClock.now
        let cpu = CLIClock.processCPU
        try CLIRunLoop.run(session, handler: consumer.handle, seconds: duration, progress: true)
        try consumer.finish()
        let seconds = CLIClock.now - start
        let s = session.statistics
        var lines = [
            "received \(CLIFormat.bytes(s.payloadBytes)) in \(CLIFormat.fixed(seconds, 2)) s (\(CLIFormat.fixed(CLIFormat.gbit(bytes: s.payloadBytes, seconds: seconds), 2)) Gbit/s), "
                + "\(s.frames) \(framed ? "frames" : "segments"), "
                + "\(s.connectionsEnded) connections (\(s.connectionsFailed) failed"
                + (framed ? ", \(s.sequenceGaps) sequence gaps" : "") + "), "
                + "CPU \(CLIFormat.fixed(CLIClock.processCPU - cpu, 2)) s",
        ]
        lines += consumer.summaryLines
        for line in lines { print(line) }
        let f = session.inFlight
        if f.pool != 0 || f.tokens != 0 {
            logger.error("buffers left in flight at exit: pool \(f.pool), tokens \(f.tokens)")
            throw ExitCode(1)
        }
    }
}

func parseAddress(_ text: String) throws -> SocketAddress {
    do {
        return try SocketAddress(parsing: text)
    } catch {
        throw ValidationError("\(error)")
    }
}

/// Range checks for numeric options, at parse time, with the range in the message.
enum CLIRange {
    static func check(_ name: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(name) \(value) is out of range: it must be \(range.lowerBound) to \(range.upperBound)")
        }
    }

    /// A chunk size: a power of two from 4 KiB to 2 MiB.
    static func chunk(_ size: CLIByteSize, name: String = "--chunk") throws {
        let n = size.bytes
        guard n >= 4096, n <= 2 << 20, n & (n - 1) == 0 else {
            throw ValidationError("\(name) \(size) must be a power of two from 4K to 2M")
        }
    }
}
