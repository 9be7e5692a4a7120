import NetmemSHA256
import Logging
import NetmemFraming
import NetmemGPU
import NetmemSession
import NetmemURing
import Synchronization

/// What `recv` and `demo` do with each frame of a receive session, on its RX thread: the
/// digests and checks they print, and the move to GPU memory with a cuda provider. Each
/// frame goes away at the end of `handle`, which gives its tokens back.
final class CLIReceiveConsumer: @unchecked Sendable {
    struct Options {
        /// SHA-256 of each connection's bytes (raw) or payloads (framed).
        var sha256 = false
        /// SHA-256 of each connection's per-frame CRC-32C values (the demo's end-to-end
        /// check against the sender's).
        var digestFrameCRCs = false
        /// Stop the session after this many connections ended (0: never).
        var stopAfterConnections = 0
        var logConnections = true
    }

    /// What one ended connection looked like.
    struct Report: Sendable {
        var id: ConnectionID
        var summary: ConnectionSummary
        var sha256: String?
        var frameCRCDigest: String?
    }

    let options: Options
    let logger: Logger
    let session: ReceiveSession
    let gpu: GPUMessageConsumer?
    let ended = Atomic<Int>(0)
    private let reportsBox = Mutex<[Report]>([])

    // RX thread only (this is why the type is @unchecked Sendable).
    private final class State {
        var sha: SHA256?
        var crcDigest: SHA256?
    }
    private var perConnection: [ConnectionID: State] = [:]

    init(session: ReceiveSession, options: Options, logger: Logger) throws {
        self.session = session
        self.options = options
        self.logger = logger
        gpu = try session.gpu?.makeConsumer()
    }

    /// The most recent reports (at most `reportsKept`: a long run keeps bounded history).
    var reports: [Report] { reportsBox.withLockChecked { $0 } }
    static let reportsKept = 256

    func handle(_ event: ReceiveSession.Event) {
        switch event {
        case let .connected(id):
            let s = State()
            if options.sha256 { s.sha = SHA256() }
            if options.digestFrameCRCs { s.crcDigest = SHA256() }
            perConnection[id] = s
        case let .frame(id, frame):
            guard let s = perConnection[id] else { return }
            if s.sha != nil {
                // Device memory cannot be hashed where it lies; recv refuses --sha256 there.
                try? frame.withUnsafePayload { buffers in for b in buffers { s.sha!.update(bufferPointer: b) } }
            }
            if let header = frame.header, s.crcDigest != nil {
                withUnsafeBytes(of: header.payloadCRC32C.littleEndian) { s.crcDigest!.update(bufferPointer: $0) }
            }
            if let gpu {
                do throws(GPUError) { try gpu.consume(frame.message) } catch { logger.error("GPU: \(error)") }
            }
        case let .ended(id, summary):
            let s = perConnection.removeValue(forKey: id) ?? State()
            let report = Report(id: id, summary: summary, sha256: s.sha.map { CLIFormat.hex($0.finalize()) },
                                frameCRCDigest: s.crcDigest.map { CLIFormat.hex($0.finalize()) })
            reportsBox.withLockChecked { r in
                if r.count == Self.reportsKept { r.removeFirst(Self.reportsKept / 2) }
                r.append(report)
            }
            let framed = session.configuration.mode != .raw
            if let error = summary.error {
                logger.error("\(id) failed: \(error)", metadata: ["bytes": "\(summary.statistics.bytes)"])
            } else if options.logConnections {
                var line = "\(id) ended (\(summary.end)): \(CLIFormat.bytes(summary.statistics.bytes))"
                if framed {
                    line += ", \(summary.statistics.frames) frames, \(summary.statistics.checksumsVerified) CRC-32C verified"
                    if summary.statistics.sequenceGaps > 0 { line += ", \(summary.statistics.sequenceGaps) sequence gaps" }
                }
                if let sha = report.sha256 { line += ", sha256 \(sha)" }
                logger.info("\(line)")
            }
            let n = ended.add(1, ordering: .relaxed).newValue
            if options.stopAfterConnections > 0 && n >= options.stopAfterConnections { session.stop() }
        }
    }

    /// Waits for the GPU copies still running (after the session ended).
    func finish() throws {
        try gpu?.finish()
    }

    /// The final statistics, one "name: values" per line.
    var summaryLines: [String] {
        let s = session.statistics
        var lines = ["pool: \(s.pool)", "receiver: \(s.receiver)", "session: \(s)",
                     "provider: \(session.provider.describe())", "region: \(session.region)"]
        lines += gpu?.summaryLines ?? []
        if let binding = session.binding { lines.append("binding: \(binding.report)") }
        return lines
    }
}
