import NetmemSHA256
import Glibc
import Netmem
import NetmemDevice
import NetmemFraming
import NetmemSession
import NetmemTestSupport
import NetmemURing
import Synchronization
import SystemPackage
import Testing

/// Whether the receive path can run here; tests that need it are skipped otherwise, with
/// the reason printed.
enum SessionTest {
    static let probe: IOURing.Features? = try? IOURing.probeFeatures()
    static let available: Bool = {
        let ok = probe?.providedBufferRings ?? false
        if !ok { print("SKIP: io_uring provided-buffer rings are not available (\(probe.map { "\($0)" } ?? "io_uring unavailable"))") }
        return ok
    }()

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    static func sha256(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }
}

/// A receive session on loopback with a callback consumer that records what arrived:
/// each connection's payload bytes (read through the frames' own `withUnsafePayload`),
/// their SHA-256, sequences and ends. Everything bounded in time.
final class SessionLab: @unchecked Sendable {
    struct Ended: Sendable {
        var id: ConnectionID
        var summary: ConnectionSummary
    }

    struct State {
        var connected: [ConnectionID] = []
        var payload: [ConnectionID: [UInt8]] = [:]
        var sequences: [ConnectionID: [UInt64]] = [:]
        var regionIDs: Set<UInt32> = []
        var ended: [Ended] = []
        var held: [ReceivedFrame] = []
    }

    let session: ReceiveSession
    let state = Mutex(State())
    /// When set, the consumer keeps every frame (and so its tokens) instead of letting go.
    let holdFrames = Atomic<Bool>(false)

    init(mode: FrameParser.Mode, memory: ReceiveSession.Memory = .host, chunkSize: Int = 64 << 10, buffers: Int = 32,
         segments: Int = 3, configure: (inout ReceiveSession.Configuration) -> Void = { _ in }) throws {
        var c = ReceiveSession.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"), memory: memory, mode: mode)
        c.chunkSize = chunkSize
        c.bufferCount = buffers
        c.segments = segments
        c.idleWait = .milliseconds(5)
        c.name = "test"
        configure(&c)
        session = try ReceiveSession(c)
    }

    var address: SocketAddress { session.localAddress! }

    func start() throws {
        try session.start { [self] event in consume(event) }
    }

    private func consume(_ event: ReceiveSession.Event) {
        switch event {
        case let .connected(id):
            state.withLockChecked { $0.connected.append(id) }
        case let .frame(id, frame):
            var bytes: [UInt8] = []
            do {
                try frame.withUnsafePayload { buffers in for b in buffers { bytes += b } }
            } catch {
                Issue.record("payload not readable: \(error)")
            }
            let hold = holdFrames.load(ordering: .relaxed)
            state.withLockChecked { s in
                s.payload[id, default: []] += bytes
                for f in frame.fragments { s.regionIDs.insert(f.regionID) }
                if let h = frame.header { s.sequences[id, default: []].append(h.sequence) }
                if hold { s.held.append(frame) }
            }
        case let .ended(id, summary):
            state.withLockChecked { $0.ended.append(Ended(id: id, summary: summary)) }
        }
    }

    /// Lets go of every held frame (their tokens go back).
    func releaseHeld() {
        let held = state.withLockChecked { s -> [ReceivedFrame] in
            defer { s.held.removeAll() }
            return s.held
        }
        _ = consume held
    }

    /// Waits (at most `seconds`) until `condition` holds.
    @discardableResult
    func wait(seconds: Double = 30, _ condition: (State) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if state.withLockChecked({ condition($0) }) { return true }
            usleep(2000)
        }
        return false
    }

    func connect() throws -> FileDescriptor { try BlockingSocket.connect(to: address) }

    /// Stops the session, waits for it and checks nothing is in flight anywhere: no
    /// token out, every chunk back, the pool finished, the binding freed.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) throws {
        releaseHeld()
        session.stop()
        try session.waitBlocking()
        let s = session.statistics
        #expect(s.tokensOutstanding == 0, "tokens still out", sourceLocation: sourceLocation)
        #expect(s.poolInFlight == 0, "pool reports \(s.poolInFlight) buffers in flight", sourceLocation: sourceLocation)
        let end = session.shutdownStatus
        #expect(end.pool == .finished, "pool: \(end.pool)", sourceLocation: sourceLocation)
        if let b = end.binding {
            #expect(b.freed, "\(b)", sourceLocation: sourceLocation)
        }
    }
}

extension FileDescriptor {
    func sendAll(_ bytes: [UInt8]) throws { try Loopback.sendAll(self, bytes) }

    /// Sends `payloads` as frames (checksums on every frame but each third).
    func sendFrames(_ payloads: [[UInt8]], streamID: UInt32 = 3) throws {
        var w = FrameWriter(streamID: streamID, firstSequence: 0, checksums: true)
        for (i, p) in payloads.enumerated() {
            w.checksums = i % 3 != 2
            try sendAll(w.encode(p))
        }
    }
}

/// A SHA-256 being fed (for senders that hash what they send).
struct SHA256Box {
    private var sha = NetmemSHA256.SHA256()
    mutating func update(_ bytes: [UInt8]) { sha.update(data: bytes) }
    var hex: String { NetmemSHA256.SHA256.hex(sha.finalize()) }
}
