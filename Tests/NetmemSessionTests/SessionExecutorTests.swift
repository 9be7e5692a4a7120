import Netmem
import NetmemFraming
@testable import NetmemSession
import NetmemTestSupport
import Synchronization
import Testing

@Suite("Receive session: consumers on the RX-thread executor", .serialized)
struct SessionExecutorTests {
    @Test("Six connections of odd sizes read by tasks on the RX thread: every byte, and the executor outlives the session",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"),
          arguments: [false, true])
    func everyByteOnTheRXThread(framed: Bool) async throws {
        let session = try SessionAsyncTests.session(mode: framed ? .framed(maxPayload: 100_000) : .raw, buffers: 32)
        var rng = SplitMix64(seed: framed ? 53 : 59)
        let streams = [1, 4097, 3 * 65_537, 1_000_003, 2_500_001, 333_333].map { rng.bytes($0) }
        // Made before the session starts: its first job runs on the global executor.
        let consumer = Task(executorPreference: session.executor) { [streams] in
            try await SessionAsyncTests.digestsOfConnections(session, count: streams.count, executor: session.executor)
        }
        try session.start()
        let senders = streams.map { SessionAsyncTests.send($0, to: session.localAddress!, framedBy: framed ? 100_000 : nil) }
        let digests = try await consumer.value
        for s in senders { s.join() }
        #expect(digests.sorted() == streams.map { SessionTest.sha256($0) }.sorted())
        #expect(session.executor.jobsRun > 0, "no job ran on the RX thread")
        session.stop()
        try await session.wait()
        #expect(session.statistics.tokensOutstanding == 0)
        #expect(session.shutdownStatus.pool == .finished)
        // After the end, jobs go to the global executor instead of a thread that is gone.
        let after = await Task(executorPreference: session.executor) { 7 }.value
        #expect(after == 7)
    }

    @Test("A consumer on the RX thread that waits on a timer (resumed from another thread) still gets every byte in order",
          .enabled(if: SessionTest.available, "needs io_uring provided-buffer rings"))
    func consumerResumedFromElsewhere() async throws {
        let session = try SessionAsyncTests.session(buffers: 8, chunk: 64 << 10, queued: 4)
        try session.start()
        var rng = SplitMix64(seed: 61)
        let data = rng.bytes(3 << 20 + 17)
        let sender = SessionAsyncTests.send(data, to: session.localAddress!)
        let received = try await Task(executorPreference: session.executor) {
            var bytes: [UInt8] = []
            var iterator = session.connections.makeAsyncIterator()
            let connection = try #require(try await iterator.next())
            var n = 0
            for try await frame in connection.frames {
                bytes += try frame.message.payloadBytes()
                n += 1
                if n % 4 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            return bytes
        }.value
        sender.join()
        #expect(received == data)
        #expect(session.executor.jobsRun > 0)
        session.stop()
        try await session.wait()
        #expect(session.statistics.tokensOutstanding == 0)
        #expect(session.shutdownStatus.pool == .finished)
    }
}
