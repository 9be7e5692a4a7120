import ArgumentParser
import NetmemSHA256
import Logging
import NetmemBench
import NetmemFraming
import NetmemSession
import NetmemURing
import Synchronization

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Send framed data over loopback into a memfd region and verify it end to end.",
        discussion: """
        Sender and receiver in one process on loopback: a receive session lands the stream in \
        a memfd region of several scatter-gather segments, bound through a binding, via \
        io_uring; it splits each frame's header (copied) from its payload (left in place, \
        described by fragments), verifies every CRC-32C and the sequence of frames, and every \
        frame gives its tokens back. Exits non-zero if anything failed to verify or a buffer \
        was left in flight.
        """)

    @Option(parsing: .unconditional, help: "Payload bytes to send.")
    var bytes: CLIByteSize = CLIByteSize(bytes: 2 << 30)

    @Option(name: .customLong("message-size"), parsing: .unconditional, help: "Payload bytes per frame.")
    var messageSize: CLIByteSize = CLIByteSize(bytes: 1 << 20)

    @Option(help: "Memory to land data in: host, hugepage, memfd, cuda[:N] (GPU), cuda:standin (GPU paths on host memory).")
    var provider: CLIMemoryProvider = .standard(.memfd)

    @Option(name: .customLong("gpu-landing"), help: "With a cuda provider: pinned (GPU reads pinned host memory in place, then unpacks) or bounce (host chunks copied to the GPU).")
    var gpuLanding: CLIGPULanding?

    @Option(parsing: .unconditional, help: "Chunk (buffer) size (a memfd region's binding takes 4K, 64K or 2M).")
    var chunk: CLIByteSize = CLIByteSize(bytes: 2 << 20)

    @Option(parsing: .unconditional, help: "Buffers in the provided-buffer ring (1 to 32768).")
    var buffers: Int = 64

    @Option(parsing: .unconditional, help: "Scatter-gather segments of the memfd region (--provider memfd), 1 to 4096.")
    var segments: Int = 3

    @Flag(inversion: .prefixedNo, help: "CRC-32C on every frame's payload.")
    var crc = true

    func validate() throws {
        guard messageSize.bytes > 0, messageSize.bytes <= Int(UInt32.max) else {
            throw ValidationError("--message-size must be 1 byte to 4 GiB - 1")
        }
        try CLIRange.check("--buffers", buffers, 1...32768)
        try CLIRange.check("--segments", segments, 1...4096)
        try CLIRange.chunk(chunk)
        if gpuLanding != nil && provider.gpu == nil {
            throw ValidationError("--gpu-landing needs a cuda provider (--provider cuda[:N] or cuda:standin)")
        }
        if messageSize.bytes > buffers * chunk.bytes / 2 {
            throw ValidationError("--message-size \(messageSize) does not fit the receive ring: \(buffers) × \(chunk) holds "
                + "frames up to \(CLIByteSize(bytes: buffers * chunk.bytes / 2)); raise --buffers or --chunk")
        }
    }

    /// The sender's digest of frame CRCs, filled on the sender thread.
    final class SenderDigest: Sendable {
        let value = Mutex<SHA256>(SHA256())
    }

    func run() throws {
        let logger = CLILogging.bootstrap()
        CLIStopSignal.install()
        var configuration = ReceiveSession.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"),
                                                         memory: try provider.sessionMemory(landing: gpuLanding ?? .pinned),
                                                         mode: .framed(maxPayload: messageSize.bytes))
        configuration.chunkSize = chunk.bytes
        configuration.bufferCount = buffers
        configuration.segments = segments
        configuration.name = "demo"
        let session: ReceiveSession
        do { session = try ReceiveSession(configuration) } catch { throw CLIError("\(error)") }
        var options = CLIReceiveConsumer.Options()
        options.digestFrameCRCs = true
        options.stopAfterConnections = 1
        options.logConnections = false
        let consumer = try CLIReceiveConsumer(session: session, options: options, logger: logger)
        let address = session.localAddress!
        print("demo: \(CLIFormat.bytes(bytes.bytes)) in \(CLIFormat.bytes(messageSize.bytes)) frames over \(address), "
            + "\(provider.rawValue) region of \(session.configuration.chunkCount) × \(CLIFormat.bytes(chunk.bytes))"
            + (provider == .standard(.memfd) ? " in \(session.region.segments.count) segments" : "")
            + ", CRC-32C \(crc ? "on" : "off")")

        var plan = StreamSender.Plan(totalBytes: bytes.bytes, messageSize: messageSize.bytes, framed: true)
        plan.checksums = crc
        let digest = SenderDigest()
        let cpu0 = CLIClock.processCPU
        let t0 = CLIClock.now
        let sender = LoopbackBench.Sender(plan, to: address, observer: {
            StreamSender.Observer(frame: { header in
                let crc = withUnsafeBytes(of: header.payloadCRC32C.littleEndian) { Array($0) }
                digest.value.withLockChecked { $0.update(data: crc) }
            })
        }, shouldStop: { CLIStopSignal.isRequested })
        try CLIRunLoop.run(session, handler: consumer.handle, seconds: nil, progress: true)
        try consumer.finish()
        let seconds = CLIClock.now - t0
        let cpu = CLIClock.processCPU - cpu0

        var failures: [String] = []
        var sent = StreamSender.Result()
        switch sender.join() {
        case let .success(r): sent = r
        case let .failure(e): failures.append("\(e)")
        }
        let senderDigest = CLIFormat.hex(digest.value.withLockChecked { $0.finalize() })
        let s = session.statistics
        let report = consumer.reports.first
        if CLIStopSignal.isRequested { failures.append("interrupted") }
        if s.payloadBytes != sent.bytes { failures.append("received \(s.payloadBytes) payload bytes, sent \(sent.bytes)") }
        if s.frames != sent.messages { failures.append("received \(s.frames) frames, sent \(sent.messages)") }
        if crc && s.checksumsVerified != s.frames { failures.append("\(s.checksumsVerified) of \(s.frames) frame checksums verified") }
        if report == nil { failures.append("the connection never ended") }
        if let error = report?.summary.error { failures.append("connection failed: \(error)") }
        if s.sequenceGaps > 0 { failures.append("\(s.sequenceGaps) frames out of sequence") }
        let digestMatch = report?.frameCRCDigest == senderDigest
        if !digestMatch { failures.append("the digest of frame CRCs differs between sender and receiver") }
        let inFlight = session.inFlight
        if inFlight.pool != 0 || inFlight.tokens != 0 {
            failures.append("leak: pool in flight \(inFlight.pool), tokens \(inFlight.tokens)")
        }

        let gb = Double(s.payloadBytes) / 1e9
        print("throughput: \(CLIFormat.fixed(CLIFormat.gbit(bytes: s.payloadBytes, seconds: seconds), 2)) Gbit/s "
            + "(\(CLIFormat.bytes(s.payloadBytes)) in \(CLIFormat.fixed(seconds, 2)) s)")
        print("cpu: \(CLIFormat.fixed(gb > 0 ? cpu / gb : 0, 3)) s per GB (sender and receiver, \(CLIFormat.fixed(cpu, 2)) s total)")
        print("messages: \(s.frames) frames received, \(sent.messages) sent")
        print("checksums: \(s.checksumsVerified)/\(s.frames) CRC-32C verified, frame digest \(digestMatch ? "matches" : "DIFFERS")"
            + " (\(senderDigest.prefix(16))…)")
        for line in consumer.summaryLines { print(line) }
        let end = session.shutdownStatus
        print("shutdown: pool \(end.pool)" + (end.binding.map { ", \($0)" } ?? ""))
        if end.pool != .finished { failures.append("the pool did not finish after destroy: \(end.pool)") }
        if let b = end.binding, !b.freed { failures.append("the binding was not freed after unbind: \(b)") }
        if failures.isEmpty {
            print("result: OK")
        } else {
            for f in failures { print("FAILED: \(f)") }
            throw ExitCode(1)
        }
    }
}
