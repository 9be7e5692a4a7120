import Glibc
import Netmem
import NetmemFraming
import NetmemSession
import NetmemURing
import Synchronization
import SystemPackage

/// Framed receive with senders that used to stall each other: a fast sender alone and
/// beside tricklers, and many senders of large frames at once. What `netmem bench
/// fairness` runs. Every frame carries a CRC-32C the receiver verifies; a connection
/// counts as intact when it ended cleanly with every frame and byte its sender sent.
package enum FairnessBench {
    package struct Phase: Sendable {
        package var bytes = 0
        package var seconds = 0.0
        package var connections = 0
        package var digestsMatched = 0
        package var gbps: Double { seconds > 0 ? Double(bytes) * 8 / seconds / 1e9 : 0 }
    }

    package struct Result: Sendable {
        package var alone = Phase()
        package var besideTricklers = Phase()
        package var tricklers = 0
        /// Connections ended by the frame timeout (tricklers, and any sender that stalled).
        package var frameTimeouts = 0
        package var many = Phase()
        package var statistics: ReceiveSession.Statistics?
    }

    /// What each stream's connection delivered, reported by the session's handler.
    final class Received: @unchecked Sendable {
        struct Stream { var frames = 0; var bytes = 0; var clean = false }
        private let lock = Mutex<[UInt32: Stream]>([:])
        private let ended = Atomic<Int>(0)
        private let timeouts = Atomic<Int>(0)
        private var streams: [ConnectionID: (UInt32, Stream)] = [:]  // RX thread only

        func handle(_ event: ReceiveSession.Event) {
            switch event {
            case .connected:
                break
            case let .frame(id, frame):
                var entry = streams[id] ?? (frame.header?.streamID ?? 0, Stream())
                entry.1.frames += 1
                entry.1.bytes += frame.payloadLength
                streams[id] = entry
            case let .ended(id, summary):
                if let (stream, counted) = streams.removeValue(forKey: id) {
                    var s = counted
                    s.clean = summary.error == nil
                    lock.withLock { $0[stream] = s }
                }
                if case .partialFrameTimedOut? = summary.error { timeouts.add(1, ordering: .relaxed) }
                ended.add(1, ordering: .relaxed)
            }
        }

        var endedCount: Int { ended.load(ordering: .relaxed) }
        var timeoutCount: Int { timeouts.load(ordering: .relaxed) }
        func stream(_ id: UInt32) -> Stream? { lock.withLock { $0[id] } }
    }

    /// A framed sender of `bytes` in frames of `frame` bytes (with CRC-32C), on its own
    /// thread; `join` says how many frames it sent, nil when sending failed.
    final class Sender: Sendable {
        final class Outcome: Sendable { let frames = Mutex<Int?>(nil) }
        let stream: UInt32
        let bytes: Int
        private let thread: JoinableThread
        private let result = Outcome()

        init(to address: SocketAddress, stream: UInt32, bytes: Int, frame: Int) {
            self.stream = stream
            self.bytes = bytes
            let result = self.result
            thread = JoinableThread { [result] in
                var plan = StreamSender.Plan(totalBytes: bytes, messageSize: frame, framed: true)
                plan.streamID = stream
                do {
                    let s = try BlockingSocket.connect(to: address)
                    let sent = try StreamSender.send(plan, to: s)
                    try BlockingSocket.shutdownWrite(s)
                    try s.close()
                    result.frames.withLock { $0 = sent.messages }
                } catch {
                    result.frames.withLock { $0 = nil }
                }
            }
        }

        func join() -> Int? {
            thread.join()
            return result.frames.withLock { $0 }
        }
    }

    /// One framed byte every `interval` until the receiver ends the connection.
    final class Trickler: Sendable {
        final class Flag: Sendable { let raised = Atomic<Bool>(false) }
        private let thread: JoinableThread
        private let stop = Flag()

        init(to address: SocketAddress, interval: Duration) {
            let stop = self.stop
            thread = JoinableThread { [stop] in
                guard let s = try? BlockingSocket.connect(to: address) else { return }
                defer { _ = try? s.close() }
                var writer = FrameWriter(streamID: 0xFFFF_FFFF)
                let frame = writer.encode([UInt8](repeating: 1, count: 60_000))
                var at = 0
                let us = UInt32(interval.components.attoseconds / 1_000_000_000_000 + interval.components.seconds * 1_000_000)
                while !stop.raised.load(ordering: .relaxed) && at < frame.count {
                    let ok = (try? frame[at..<(at + 1)].withUnsafeBytes { try BlockingSocket.sendAll(s, $0) }) != nil
                    if !ok { break }  // ended by the receiver's timeout
                    at += 1
                    usleep(us)
                }
            }
        }

        func finish() {
            stop.raised.store(true, ordering: .relaxed)
            thread.join()
        }
    }

    /// Runs the three phases against one receive session made from `configuration`.
    package static func run(_ base: ReceiveSession.Configuration, fastBytes: Int, frame: Int, tricklers: Int,
                            senders: Int, bytesPerSender: Int) throws -> Result {
        var configuration = base
        configuration.listen = try SocketAddress(parsing: "127.0.0.1:0")
        let session = try ReceiveSession(configuration)
        let received = Received()
        try session.start(handler: received.handle)
        defer {
            session.stop()
            try? session.waitBlocking()
        }
        let address = session.localAddress!
        var r = Result()
        r.tricklers = tricklers

        func phase(_ group: [Sender], bytes: Int) -> Phase {
            var p = Phase()
            let t0 = LoopbackBench.now
            let before = received.endedCount
            let digests = group.map { $0.join() }
            let deadline = LoopbackBench.now + 120
            while received.endedCount < before + group.count && LoopbackBench.now < deadline {
                usleep(500)
            }
            p.seconds = LoopbackBench.now - t0
            p.bytes = bytes
            p.connections = group.count
            p.digestsMatched = zip(group, digests).filter { s, frames in
                guard let frames, let got = received.stream(s.stream) else { return false }
                return got.clean && got.frames == frames && got.bytes == s.bytes
            }.count
            return p
        }

        r.alone = phase([Sender(to: address, stream: 1, bytes: fastBytes, frame: frame)], bytes: fastBytes)
        let trickle = (0..<tricklers).map { _ in Trickler(to: address, interval: .milliseconds(10)) }
        usleep(200_000)  // let the tricklers start pinning memory
        r.besideTricklers = phase([Sender(to: address, stream: 2, bytes: fastBytes, frame: frame)], bytes: fastBytes)
        let many = (0..<senders).map { Sender(to: address, stream: UInt32(100 + $0), bytes: bytesPerSender, frame: max(frame, 1 << 20)) }
        r.many = phase(many, bytes: senders * bytesPerSender)
        for t in trickle { t.finish() }
        r.frameTimeouts = received.timeoutCount
        r.statistics = session.statistics
        return r
    }
}
