import ArgumentParser
import Glibc
import Logging
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

    @Option(help: "Memory to land data in: host, hugepage, memfd, cuda[:N] (GPU), cuda:standin (GPU paths on host memory).")
    var provider: CLIMemoryProvider = .standard(.host)

    @Option(name: .customLong("gpu-landing"), help: "With a cuda provider: pinned (GPU reads pinned host memory in place, then unpacks) or bounce (host chunks copied to the GPU).")
    var gpuLanding: CLIGPULanding = .pinned

    @Option(help: "Chunk (buffer) size, a power of two from 4K to 2M.")
    var chunk: CLIByteSize = CLIByteSize(bytes: 64 << 10)

    @Option(help: "Buffers in the kernel's provided-buffer ring.")
    var buffers: Int = 64

    @Flag(help: "Print the SHA-256 of each connection's bytes (payload, when framed).")
    var sha256 = false

    @Option(name: .customLong("max-payload"), help: "Largest frame payload accepted (default: half the ring's memory, the most it can assemble).")
    var maxPayload: CLIByteSize?

    @Option(help: "Serve Prometheus metrics on ADDR:PORT (GET /metrics).")
    var metrics: String?

    @Option(help: "Stop after this many seconds.")
    var duration: Double?

    @Option(help: "Stop after this many connections ended.")
    var connections: Int = 0

    @Flag(name: .long, help: "Debug logging.")
    var verbose = false

    func run() throws {
        let logger = CLILogging.bootstrap(verbose: verbose)
        CLIStopSignal.install()
        let address = try parseAddress(listen)
        var options = CLIReceiveSession.Options()
        options.provider = provider.standardKind ?? .host
        options.gpu = provider.gpu
        options.gpuLanding = gpuLanding
        options.chunkSize = chunk.bytes
        options.bufferCount = buffers
        options.framed = framed
        options.maxPayload = maxPayload?.bytes ?? buffers * chunk.bytes / 2
        options.sha256 = sha256
        options.stopAfterConnections = connections
        let session = try CLIReceiveSession(options, logger: logger)
        let listener = try BlockingSocket.listen(on: address)
        defer { try? listener.close() }
        let bound = try BlockingSocket.localAddress(of: listener)
        session.receiver.listen(on: listener)
        var server: CLIMetricsServer?
        if let metrics {
            let exporter = CLIMetricsExporter(session: session)
            server = try CLIMetricsServer(address: parseAddress(metrics), exporter: exporter)
            logger.info("metrics on http://\(server!.address)/metrics")
        }
        defer { server?.stop() }
        logger.info("listening on \(bound) (\(framed ? "framed" : "raw"), \(provider.rawValue) memory, \(CLIFormat.bytes(chunk.bytes)) chunks × \(buffers))")
        let start = CLIClock.now
        let cpu = CLIClock.processCPU
        try CLIRunLoop.run(session, deadline: duration.map { .now + .milliseconds(Int($0 * 1000)) }, progress: true)
        let seconds = CLIClock.now - start
        let bytes = session.payloadBytes.load(ordering: .relaxed)
        var lines = [
            "received \(CLIFormat.bytes(bytes)) in \(CLIFormat.fixed(seconds, 2)) s (\(CLIFormat.fixed(CLIFormat.gbit(bytes: bytes, seconds: seconds), 2)) Gbit/s), "
                + "\(session.frames.load(ordering: .relaxed)) \(framed ? "frames" : "segments"), "
                + "\(session.connectionsEnded.load(ordering: .relaxed)) connections (\(session.connectionsFailed.load(ordering: .relaxed)) failed), "
                + "CPU \(CLIFormat.fixed(CLIClock.processCPU - cpu, 2)) s",
        ]
        lines += session.summaryLines()
        for line in lines { print(line) }
        let f = session.inFlight
        if f.pool != 0 || f.segments != 0 || f.tokens != 0 {
            logger.error("buffers left in flight at exit: pool \(f.pool), segments \(f.segments), tokens \(f.tokens)")
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
