import Glibc
import Netmem
import NetmemFraming
@testable import NetmemSession
import NetmemTestSupport
import NetmemURing
import Synchronization
import SystemPackage
import Testing

@Suite("Receive session: the async API", .serialized)
struct SessionAsyncTests {
    static func session(mode: FrameParser.Mode = .raw, buffers: Int = 32, chunk: Int = 64 << 10,
                        queued: Int = 64, memory: ReceiveSession.Memory = .host) throws -> ReceiveSession {
        var c = ReceiveSession.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"), memory: memory, mode: mode)
        c.bufferCount = buffers
        c.chunkSize = chunk
        c.maxQueuedFrames = queued
        c.idleWait = .milliseconds(5)
        return try ReceiveSession(c)
    }

    /// Sends `data` on a new connection from its own thread.
    static func send(_ data: [UInt8], to address: SocketAddress, framedBy size: Int? = nil) -> TestThread {
        TestThread {
            do {
                let s = try BlockingSocket.connect(to: address)
                if let size {
                    var w = FrameWriter()
                    var at = 0
                    while at < data.count {
                        let n = min(size, data.count - at)
                        try s.sendAll(w.encode(Array(data[at..<(at + n)])))
                        at += n
                    }
                } else {
                    try s.sendAll(data)
                }
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
    }

    /// Takes `count` connections from `session` and reads each in its own task (preferring
    /// `executor`); returns the SHA-256 of each connection's bytes, in no set order.
    static func digestsOfConnections(_ session: ReceiveSession, count: Int,
                                     executor: (any TaskExecutor)? = nil) async throws -> [String] {
        final class Digests: Sendable { let value = Mutex<[String]>([]) }
        let digests = Digests()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var accepted = 0
            for try await connection in session.connections {
                group.addTask(executorPreference: executor) { [connection] in
                    var bytes: [UInt8] = []
                    for try await frame in connection.frames {
                        try frame.withUnsafePayload { buffers in for b in buffers { bytes += b } }
                    }
                    let d = SessionTest.sha256(bytes)
                    digests.value.withLockChecked { $0.append(d) }
                }
                accepted += 1
                if accepted == count { break }
            }
            try await group.waitForAll()
        }
        return digests.value.withLockChecked { $0 }
    }

    @Test("Eight connections at once, each read by its own task: every byte, in order",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func manyConnections() async throws {
        let session = try Self.session(mode: .framed(maxPayload: 256 << 10), buffers: 64)
        try session.start()
        var rng = SplitMix64(seed: 31)
        let streams = (0..<8).map { i in rng.bytes(300_000 + i * 77_777) }
        let senders = streams.map { Self.send($0, to: session.localAddress!, framedBy: 100_000) }
        let digests = try await Self.digestsOfConnections(session, count: streams.count)
        for s in senders { s.join() }
        #expect(Set(digests) == Set(streams.map { SessionTest.sha256($0) }))
        session.stop()
        try await session.wait()
        #expect(session.statistics.tokensOutstanding == 0)
        #expect(session.shutdownStatus.pool == .finished)
    }

    @Test("A consumer that falls behind holds only its own connection; the other completes",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func slowConsumerHoldsOnlyItself() async throws {
        let session = try Self.session(buffers: 32, chunk: 64 << 10, queued: 8)
        try session.start()
        var rng = SplitMix64(seed: 41)
        let slowData = rng.bytes(3 << 20)
        let fastData = rng.bytes(3 << 20)
        let slowSender = Self.send(slowData, to: session.localAddress!)
        var iterator = session.connections.makeAsyncIterator()
        let slow = try #require(try await iterator.next())
        // The slow consumer takes nothing yet: its queue fills and the session stops reading it.
        let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
        while session.statistics.holds == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(session.statistics.holds >= 1)
        #expect(slow.queue.count <= 8 + 32, "the held connection queued \(slow.queue.count) frames")
        // Meanwhile another connection goes through whole.
        let fastSender = Self.send(fastData, to: session.localAddress!)
        let fast = try #require(try await iterator.next())
        var fastBytes: [UInt8] = []
        for try await frame in fast.frames { fastBytes += try frame.message.payloadBytes() }
        #expect(fastBytes == fastData)
        // Now the slow one reads everything, in order.
        var slowBytes: [UInt8] = []
        for try await frame in slow.frames { slowBytes += try frame.message.payloadBytes() }
        #expect(slowBytes == slowData)
        slowSender.join()
        fastSender.join()
        session.stop()
        try await session.wait()
        #expect(session.statistics.tokensOutstanding == 0)
        #expect(session.shutdownStatus.pool == .finished)
    }

    @Test("A bad frame is thrown from the connection's sequence after the good ones",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func errorsAreThrown() async throws {
        let session = try Self.session(mode: .framed(maxPayload: 1000))
        try session.start()
        let sender = TestThread {
            do {
                let s = try BlockingSocket.connect(to: session.localAddress!)
                var w = FrameWriter()
                try s.sendAll(w.encode([1, 2, 3]))
                try s.sendAll(w.encode([UInt8](repeating: 0, count: 2000)))  // over the maximum
                usleep(200_000)
                try s.close()
            } catch { Issue.record("sender: \(error)") }
        }
        var iterator = session.connections.makeAsyncIterator()
        let connection = try #require(try await iterator.next())
        var frames: [[UInt8]] = []
        await #expect(throws: FrameError.payloadTooLarge(2000, maximum: 1000)) {
            for try await frame in connection.frames { frames.append(try frame.message.payloadBytes()) }
        }
        #expect(frames == [[1, 2, 3]])
        #expect(connection.summary?.error == .payloadTooLarge(2000, maximum: 1000))
        sender.join()
        session.stop()
        try await session.wait()
        #expect(session.statistics.tokensOutstanding == 0)
    }

    @Test("Cancelling the task that iterates connections stops the session cleanly",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func cancellationStops() async throws {
        let session = try Self.session()
        try session.start()
        let client = try BlockingSocket.connect(to: session.localAddress!)
        try client.sendAll([UInt8](repeating: 9, count: 100_000))
        let task = Task {
            var n = 0
            for try await _ in session.connections { n += 1 }
            return n
        }
        // Wait until the connection was accepted, then cancel.
        let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
        while session.statistics.connectionsAccepted == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        _ = try await task.value
        try await session.wait()
        #expect(!session.isRunning)
        #expect(session.statistics.connectionsOpen == 0)
        try client.close()
        #expect(session.shutdownStatus.pool == .finished)
    }

    @Test("run() ends with the session when its task is cancelled",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func runAndCancel() async throws {
        let session = try Self.session()
        let task = Task { try await session.run() }
        let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
        while !session.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        task.cancel()
        try await task.value
        #expect(!session.isRunning)
        #expect(throws: ReceiveSessionError.alreadyStarted) { try session.start() }
    }
}
