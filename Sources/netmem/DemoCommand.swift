import Netmem
import ArgumentParser
import Logging
import NetmemURing

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Send framed data over loopback into a memfd region and verify it end to end.",
        discussion: """
        Sender and receiver in one process on loopback: the receiver lands the stream in a \
        memfd region through io_uring, splits each frame's header (copied) from its payload \
        (left in place, described by fragments), verifies every CRC-32C and the sequence of \
        frames, then returns every token. Exits non-zero if anything failed to verify or a \
        buffer was left in flight.
        """)

    @Option(help: "Payload bytes to send.")
    var bytes: CLIByteSize = CLIByteSize(bytes: 2 << 30)

    @Option(name: .customLong("message-size"), help: "Payload bytes per frame.")
    var messageSize: CLIByteSize = CLIByteSize(bytes: 1 << 20)

    @Option(help: "Memory to land data in: host, hugepage, memfd, cuda[:N] (GPU), cuda:standin (GPU paths on host memory).")
    var provider: CLIMemoryProvider = .standard(.memfd)

    @Option(name: .customLong("gpu-landing"), help: "With a cuda provider: pinned (GPU reads pinned host memory in place, then unpacks) or bounce (host chunks copied to the GPU).")
    var gpuLanding: CLIGPULanding = .pinned

    @Option(help: "Chunk (buffer) size (a memfd region's binding takes 4K, 64K or 2M).")
    var chunk: CLIByteSize = CLIByteSize(bytes: 2 << 20)

    @Option(help: "Buffers in the provided-buffer ring.")
    var buffers: Int = 64

    @Flag(inversion: .prefixedNo, help: "CRC-32C on every frame's payload.")
    var crc = true

    func validate() throws {
        guard messageSize.bytes > 0, messageSize.bytes <= Int(UInt32.max) else {
            throw ValidationError("--message-size must be 1 byte to 4 GiB - 1")
        }
    }

    func run() throws {
        let logger = CLILogging.bootstrap()
        CLIStopSignal.install()
        var options = CLIReceiveSession.Options()
        options.provider = provider.standardKind ?? .host
        options.gpu = provider.gpu
        options.gpuLanding = gpuLanding
        options.chunkSize = chunk.bytes
        options.bufferCount = buffers
        options.framed = true
        options.maxPayload = messageSize.bytes
        options.digestFrameCRCs = true
        options.stopAfterConnections = 1
        options.logConnections = false
        let session = try CLIReceiveSession(options, logger: logger)
        let listener = try BlockingSocket.listen(on: SocketAddress(parsing: "127.0.0.1:0"))
        defer { try? listener.close() }
        let address = try BlockingSocket.localAddress(of: listener)
        session.receiver.listen(on: listener)
        print("demo: \(CLIFormat.bytes(bytes.bytes)) in \(CLIFormat.bytes(messageSize.bytes)) frames over \(address), "
            + "\(provider.rawValue) region of \(buffers * 2) × \(CLIFormat.bytes(chunk.bytes)), CRC-32C \(crc ? "on" : "off")")

        var plan = CLISendPlan()
        plan.totalBytes = bytes.bytes
        plan.messageSize = messageSize.bytes
        plan.framed = true
        plan.crc = crc
        plan.digestFrameCRCs = true
        let cpu0 = CLIClock.processCPU
        let t0 = CLIClock.now
        let (sender, sent) = CLILoopback.startSender(plan, to: address)
        try CLIRunLoop.run(session, deadline: nil, progress: true)
        let seconds = CLIClock.now - t0
        let cpu = CLIClock.processCPU - cpu0
        sender.join()

        var failures: [String] = []
        let sendResult: CLISendResult
        switch sent.withLockChecked({ $0 }) {
        case let .success(r)?: sendResult = r
        case let .failure(e)?: failures.append("\(e)"); sendResult = CLISendResult()
        case nil: failures.append("the sender did not finish"); sendResult = CLISendResult()
        }
        let received = session.payloadBytes.load(ordering: .relaxed)
        let frames = session.frames.load(ordering: .relaxed)
        let verified = session.checksumsVerified.load(ordering: .relaxed)
        let report = session.reports.first
        if CLIStopSignal.isRequested { failures.append("interrupted") }
        if received != sendResult.bytes { failures.append("received \(received) payload bytes, sent \(sendResult.bytes)") }
        if frames != sendResult.messages { failures.append("received \(frames) frames, sent \(sendResult.messages)") }
        if crc && verified != frames { failures.append("\(verified) of \(frames) frame checksums verified") }
        if let error = report?.summary.error { failures.append("connection failed: \(error)") }
        if session.sequenceErrors.load(ordering: .relaxed) > 0 {
            failures.append("\(session.sequenceErrors.load(ordering: .relaxed)) frames out of sequence")
        }
        let digestMatch = report?.frameCRCDigest != nil && report?.frameCRCDigest == sendResult.frameCRCDigest
        if !digestMatch { failures.append("the digest of frame CRCs differs between sender and receiver") }
        let inFlight = session.inFlight
        let heldByApp = session.receiver.statistics.buffersHeldByApplication
        if inFlight.pool != 0 || inFlight.segments != 0 || inFlight.tokens != 0 || heldByApp != 0 {
            failures.append("leak: pool in flight \(inFlight.pool), segments \(inFlight.segments), tokens \(inFlight.tokens), ring buffers held \(heldByApp)")
        }

        let gb = Double(received) / 1e9
        print("throughput: \(CLIFormat.fixed(CLIFormat.gbit(bytes: received, seconds: seconds), 2)) Gbit/s "
            + "(\(CLIFormat.bytes(received)) in \(CLIFormat.fixed(seconds, 2)) s)")
        print("cpu: \(CLIFormat.fixed(gb > 0 ? cpu / gb : 0, 3)) s per GB (sender and receiver, \(CLIFormat.fixed(cpu, 2)) s total)")
        print("messages: \(frames) frames received, \(sendResult.messages) sent")
        print("checksums: \(verified)/\(frames) CRC-32C verified, frame digest \(digestMatch ? "matches" : "DIFFERS")"
            + (report?.frameCRCDigest.map { " (\($0.prefix(16))…)" } ?? ""))
        for line in session.summaryLines() { print(line) }
        let (poolEnd, bindingEnd) = session.shutDown()
        print("shutdown: pool \(poolEnd)" + (bindingEnd.map { ", \($0)" } ?? ""))
        if poolEnd != .finished { failures.append("the pool did not finish after destroy: \(poolEnd)") }
        if let b = bindingEnd, !b.freed { failures.append("the binding was not freed after unbind: \(b)") }
        if failures.isEmpty {
            print("result: OK")
        } else {
            for f in failures { print("FAILED: \(f)") }
            throw ExitCode(1)
        }
    }
}
