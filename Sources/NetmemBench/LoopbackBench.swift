import CNetmemLinux
import Glibc
import Netmem
import NetmemFraming
import NetmemSession
import NetmemURing
import Synchronization
import SystemPackage

/// One process, loopback, the same blocking sender for every run: a receive session
/// (callbacks or the async API, raw or framed) or a plain `recv()` loop, measured in
/// Gbit/s and CPU seconds per GB. What `netmem bench rx` and `netmem demo` run.
package enum LoopbackBench {
    package struct Measurement: Sendable {
        package var bytes = 0
        package var seconds = 0.0
        package var cpuSeconds = 0.0
        package var gbps: Double { seconds > 0 ? Double(bytes) * 8 / seconds / 1e9 : 0 }
        package var cpuPerGB: Double { bytes > 0 ? cpuSeconds / (Double(bytes) / 1e9) : 0 }
        package init() {}

        /// Adds another run of the same receiver: bytes, seconds and CPU seconds add up.
        package static func += (a: inout Measurement, b: Measurement) {
            a.bytes += b.bytes
            a.seconds += b.seconds
            a.cpuSeconds += b.cpuSeconds
        }
    }

    /// How the session's frames are consumed.
    package enum Consumer: Sendable {
        /// A handler on the RX thread that drops each frame at once.
        case callback
        /// A task iterating `connections` and each connection's `frames`, on the session's
        /// `RXThreadExecutor`.
        case async
        /// The same task on the default (global concurrent) executor.
        case asyncDefaultExecutor
    }

    package struct BenchError: Error, CustomStringConvertible {
        package var description: String
        init(_ d: String) { description = d }
    }

    package static var now: Double { Double(cnm_now_ns()) / 1e9 }
    package static var processCPU: Double { Double(cnm_process_cpu_ns()) / 1e9 }

    /// A sender on its own thread, connected to `address`; `join` returns its result.
    package final class Sender: Sendable {
        private final class Outcome: Sendable {
            let value = Mutex<Result<StreamSender.Result, BenchError>?>(nil)
        }
        private let thread: JoinableThread
        private let outcome = Outcome()

        package init(_ plan: StreamSender.Plan, to address: SocketAddress, observer: @escaping @Sendable () -> StreamSender.Observer = { StreamSender.Observer() },
                     shouldStop: @escaping @Sendable () -> Bool = { false }) {
            let outcome = self.outcome
            thread = JoinableThread {
                do {
                    let socket = try BlockingSocket.connect(to: address)
                    defer { _ = try? socket.close() }
                    let result = try StreamSender.send(plan, to: socket, observer: observer(), shouldStop: shouldStop)
                    try BlockingSocket.shutdownWrite(socket)
                    outcome.value.withLockChecked { $0 = .success(result) }
                } catch {
                    outcome.value.withLockChecked { $0 = .failure(BenchError("sender: \(error)")) }
                }
            }
        }

        package func join() -> Result<StreamSender.Result, BenchError> {
            thread.join()
            return outcome.value.withLockChecked { $0 } ?? .failure(BenchError("the sender did not finish"))
        }
    }

    /// The baseline: a plain blocking `recv()` loop into a 256 KiB malloc'd buffer.
    package static func plainReceive(seconds: Double, messageSize: Int) throws -> Measurement {
        let listener = try BlockingSocket.listen(on: SocketAddress(parsing: "127.0.0.1:0"))
        defer { _ = try? listener.close() }
        let address = try BlockingSocket.localAddress(of: listener)
        var plan = StreamSender.Plan(messageSize: messageSize)
        plan.duration = .milliseconds(Int(seconds * 1000))
        let cpu0 = processCPU
        let t0 = now
        let sender = Sender(plan, to: address)
        let client = try BlockingSocket.accept(listener)
        defer { _ = try? client.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 4096)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let n = try BlockingSocket.receive(client, into: buffer)
            if n == 0 { break }
            total += n
        }
        let t1 = now
        if case let .failure(e) = sender.join() { throw e }
        var m = Measurement()
        m.bytes = total
        m.seconds = t1 - t0
        m.cpuSeconds = processCPU - cpu0
        return m
    }

    /// A receive session (raw or framed, `crc` on the sender's frames) against the same
    /// sender, consumed by `consumer`.
    package static func sessionReceive(_ base: ReceiveSession.Configuration, seconds: Double, messageSize: Int,
                                       framed: Bool, crc: Bool, consumer: Consumer) async throws -> Measurement {
        var configuration = base
        configuration.listen = try SocketAddress(parsing: "127.0.0.1:0")
        configuration.mode = framed ? .framed(maxPayload: messageSize) : .raw
        let session = try ReceiveSession(configuration)
        var plan = StreamSender.Plan(messageSize: messageSize, framed: framed)
        plan.duration = .milliseconds(Int(seconds * 1000))
        plan.checksums = crc
        let failed = Atomic<Int>(0)
        let cpu0 = processCPU
        let t0 = now
        switch consumer {
        case .callback:
            try session.start { event in
                if case let .ended(_, summary) = event {
                    if summary.error != nil { failed.add(1, ordering: .relaxed) }
                    session.stop()
                }
            }
            let sender = Sender(plan, to: session.localAddress!)
            if case let .failure(e) = sender.join() { session.stop(); throw e }
            try session.waitBlocking()
        case .async, .asyncDefaultExecutor:
            try session.start()
            let sender = Sender(plan, to: session.localAddress!)
            let executor: (any TaskExecutor)? = consumer == .async ? session.executor : nil
            let consume = Task(executorPreference: executor) {
                for try await connection in session.connections {
                    do {
                        for try await frame in connection.frames { _ = consume frame }
                    } catch {
                        failed.add(1, ordering: .relaxed)
                    }
                    session.stop()
                }
            }
            try await consume.value
            if case let .failure(e) = sender.join() { throw e }
            try await session.wait()
        }
        let t1 = now
        if failed.load(ordering: .relaxed) > 0 {
            throw BenchError("the receive session reported a failed connection")
        }
        var m = Measurement()
        m.bytes = session.statistics.payloadBytes
        m.seconds = t1 - t0
        m.cpuSeconds = processCPU - cpu0
        guard session.inFlight.tokens == 0 else {
            throw BenchError("\(session.inFlight.tokens) tokens still out after the run")
        }
        return m
    }
}
