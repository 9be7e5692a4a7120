import Netmem
import Glibc
import Logging
import NetmemURing
import Synchronization
import SystemPackage

/// One process, two threads, loopback: a blocking sender and a receiver (Netmem's or a
/// plain `recv()` loop), for `demo` and `bench rx`.
enum CLILoopback {
    struct Measurement: Sendable {
        var bytes = 0
        var seconds = 0.0
        var cpuSeconds = 0.0
        var gbps: Double { CLIFormat.gbit(bytes: bytes, seconds: seconds) }
        var cpuPerGB: Double { bytes > 0 ? cpuSeconds / (Double(bytes) / 1e9) : 0 }
    }

    /// Starts the sender on its own thread, connected to `address`; the result lands in
    /// the returned box once the thread ends (join it first).
    final class SenderOutcome: Sendable {
        let value = Mutex<Result<CLISendResult, CLIError>?>(nil)
        func withLockChecked<R>(_ body: (Result<CLISendResult, CLIError>?) -> R) -> R { value.withLockChecked { body($0) } }
    }

    static func startSender(_ plan: CLISendPlan, to address: SocketAddress) -> (CLIThread, SenderOutcome) {
        let box = SenderOutcome()
        let thread = CLIThread(name: "netmem-send") {
            do {
                let socket = try BlockingSocket.connect(to: address)
                defer { try? socket.close() }
                let result = try CLISender.send(plan, to: socket)
                try BlockingSocket.shutdownWrite(socket)
                box.value.withLockChecked { $0 = .success(result) }
            } catch {
                box.value.withLockChecked { $0 = .failure(CLIError("sender: \(error)")) }
            }
        }
        return (thread, box)
    }

    /// The baseline: a plain blocking `recv()` loop into a 256 KiB malloc'd buffer.
    static func plainReceive(seconds: Double, messageSize: Int) throws -> Measurement {
        let listener = try BlockingSocket.listen(on: SocketAddress(parsing: "127.0.0.1:0"))
        defer { try? listener.close() }
        let address = try BlockingSocket.localAddress(of: listener)
        var plan = CLISendPlan()
        plan.seconds = seconds
        plan.messageSize = messageSize
        let cpu0 = CLIClock.processCPU
        let t0 = CLIClock.now
        let (sender, result) = startSender(plan, to: address)
        let client = try BlockingSocket.accept(listener)
        defer { try? client.close() }
        let buffer = UnsafeMutableRawBufferPointer(start: malloc(256 << 10), count: 256 << 10)
        defer { free(buffer.baseAddress) }
        var total = 0
        while true {
            let n = try BlockingSocket.receive(client, into: buffer)
            if n == 0 { break }
            total += n
        }
        let t1 = CLIClock.now
        sender.join()
        if case let .failure(e) = result.withLockChecked({ $0 }) { throw e }
        return Measurement(bytes: total, seconds: t1 - t0, cpuSeconds: CLIClock.processCPU - cpu0)
    }

    /// Netmem's receiver (raw or framed) against the same sender.
    static func netmemReceive(seconds: Double, messageSize: Int, framed: Bool, options base: CLIReceiveSession.Options,
                              logger: Logger) throws -> Measurement {
        var options = base
        options.framed = framed
        options.maxPayload = messageSize
        options.stopAfterConnections = 1
        options.logConnections = false
        let session = try CLIReceiveSession(options, logger: logger)
        let listener = try BlockingSocket.listen(on: SocketAddress(parsing: "127.0.0.1:0"))
        defer { try? listener.close() }
        let address = try BlockingSocket.localAddress(of: listener)
        session.receiver.listen(on: listener)
        var plan = CLISendPlan()
        plan.seconds = seconds
        plan.messageSize = messageSize
        plan.framed = framed
        plan.crc = false
        let cpu0 = CLIClock.processCPU
        let t0 = CLIClock.now
        let (sender, result) = startSender(plan, to: address)
        try CLIRunLoop.run(session, deadline: .now + .seconds(seconds * 3 + 30), progress: false)
        let t1 = CLIClock.now
        sender.join()
        if case let .failure(e) = result.withLockChecked({ $0 }) { throw e }
        if session.connectionsFailed.load(ordering: .relaxed) > 0 {
            throw CLIError("the Netmem receiver reported a failed connection: \(session.reports.compactMap { $0.summary.error?.description })")
        }
        return Measurement(bytes: session.payloadBytes.load(ordering: .relaxed), seconds: t1 - t0,
                           cpuSeconds: CLIClock.processCPU - cpu0)
    }
}
