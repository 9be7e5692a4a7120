import CNetmemLinux
import Glibc
import Netmem
import NetmemDevice
import NetmemLab
import NetmemNamespace
import NetmemXDP
import Synchronization

/// The two phases of `netmem bench xdp` over a veth pair between two namespaces: AF_XDP
/// receive, then a plain UDP socket, the same sender and traffic, CPU time per packet.
package enum XDPBench {
    /// The knobs `netmem bench xdp` turns.
    package struct Tuning {
        package var xdpSender: Bool
        package var attach: XDPConfiguration.AttachMode = .automatic
        package var spin = 0
        package var rxBatch = 256
        package var ringSize = 8192
        package var frames = 16384
        package var frameSize = 2048
        package var needWakeup = true
        package var busyPoll: XDPConfiguration.BusyPoll? = nil
        package var txBatch = 64
        /// `XDPConfiguration.coalescingMicroseconds` of the AF_XDP receiver.
        package var coalescingMicroseconds = 50
        /// The same pause before the UDP receiver's poll(2); 0 is the plain socket loop.
        package var udpCoalescingMicroseconds = 0
        package var rxCPU = -1
        package var txCPU = -1
        /// Receive into `Message`s (a copy of the headers, arrays per datagram) instead of
        /// the callback API.
        package var messageAPI = false
        /// Ends a phase early (Ctrl-C).
        package var shouldStop: @Sendable () -> Bool = { false }

        package init(xdpSender: Bool) { self.xdpSender = xdpSender }
    }

    package struct Phase {
        package var sent = 0
        package var received = 0
        package var seconds = 0.0
        package var busyNs = 0.0
        package var processNs = 0.0
        package var processNsPerPacket: Double { received > 0 ? processNs / Double(received) : 0 }
        package var receiverNs = 0.0
        package var receiverNsPerPacket: Double { received > 0 ? receiverNs / Double(received) : 0 }
        package var kernelDropped = 0
        package var rxDropped = 0
        package var rxRingFull = 0
        package var fillRingEmpty = 0
        package var vethDropped = 0
        package var inFlightAfter = 0
        /// AF_XDP phase: waits that slept a coalescing pause, and waits that went on to poll(2).
        package var coalescingPauses = 0
        package var pollWaits = 0
        package var attach = ""
        package var pps: Double { seconds > 0 ? Double(received) / seconds : 0 }
        package var cpuNsPerPacket: Double { received > 0 ? busyNs / Double(received) : 0 }

        package init() {}
    }

    /// Whole-machine busy time from the first line of /proc/stat, in nanoseconds.
    static func machineBusyNs() -> Double {
        guard let f = fopen("/proc/stat", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 512)
        guard fgets(&line, Int32(line.count), f) != nil else { return 0 }
        let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let fields = text.split(separator: " ").dropFirst().compactMap { Double($0.trimmingCharacters()) }
        guard fields.count >= 8 else { return 0 }
        // user nice system idle iowait irq softirq steal
        let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
        return busy * 1e9 / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Drops counted by an interface of the calling thread's namespace: rx_drop + tx_drop
    /// from /proc/thread-self/net/dev.
    static func interfaceDrops(_ name: String) -> Int {
        guard let f = fopen("/proc/thread-self/net/dev", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 1024)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let parts = text.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters() == name else { continue }
            let v = parts[1].split(separator: " ").compactMap { Int($0.trimmingCharacters()) }
            guard v.count >= 12 else { return 0 }
            return v[3] + v[11]
        }
        return 0
    }

    static func drops(_ lab: VethLab) -> Int {
        let a = (try? NetworkNamespace.run(in: lab.namespaceA!) { interfaceDrops(lab.ifA) }) ?? 0
        let b = (try? NetworkNamespace.run(in: lab.namespaceB!) { interfaceDrops(lab.ifB) }) ?? 0
        return a + b
    }

    /// UDP RcvbufErrors of the calling thread's namespace (/proc/thread-self/net/snmp).
    static func udpReceiveBufferErrors() -> Int {
        guard let f = fopen("/proc/thread-self/net/snmp", "r") else { return 0 }
        defer { fclose(f) }
        var header: [Substring] = []
        var line = [CChar](repeating: 0, count: 1024)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            guard text.hasPrefix("Udp: ") else { continue }
            let fields = text.dropFirst(5).split(separator: " ").map { $0.trimmingCharacters() }
            if header.isEmpty { header = fields.map { Substring($0) }; continue }
            if let i = header.firstIndex(of: "RcvbufErrors"), i < fields.count { return Int(fields[i]) ?? 0 }
        }
        return 0
    }

    /// A sender thread in namespace B: sendmmsg(2) of `payload`-byte datagrams to A
    /// until stopped.
    final class Blaster: @unchecked Sendable {
        let stopFlag = Atomic<Bool>(false)
        let sent = Atomic<Int>(0)
        let failure = Mutex<String?>(nil)
        var thread: JoinableThread?

        init(lab: VethLab, payload: Int, xdp: Bool, batch: Int = 64, cpu: Int = -1) {
            let ns = lab.namespaceB!
            if xdp {
                let frame = XDPBench.udpFrame(lab: lab, payload: payload)
                let ifB = lab.ifB
                thread = JoinableThread { [self] in
                    do {
                        if cpu >= 0 && cnm_pin_thread(Int32(cpu)) != 0 { throw LoopbackBench.BenchError("pinning the sender to CPU \(cpu) failed") }
                        try NetworkNamespace.enter(ns)
                        var config = XDPConfiguration(interfaceName: ifB, queue: 0, mode: .copy)
                        config.attachProgram = false
                        config.frameCount = 4096
                        config.receiveRingSize = 64
                        config.transmitRingSize = 2048
                        var tx = try XDPSocket(config)
                        var total = 0
                        while !stopFlag.load(ordering: .relaxed) {
                            total += try frame.withUnsafeBytes { f in
                                try tx.transmit(upTo: batch) { _, buffer in
                                    buffer.copyMemory(from: f)
                                    return f.count
                                }
                            }
                            sent.store(total, ordering: .relaxed)
                        }
                        // Wait (bounded) for the ring to drain so every counted frame left.
                        let end = LoopbackBench.now + 1
                        while tx.counters.completed < tx.counters.transmitted && LoopbackBench.now < end {
                            try tx.kickTransmit()
                            tx.reapCompletions()
                        }
                        sent.store(tx.counters.completed, ordering: .relaxed)
                    } catch {
                        failure.withLockChecked { $0 = "AF_XDP sender: \(error)" }
                    }
                }
                return
            }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(9999).bigEndian
            inet_pton(AF_INET, lab.ipA, &addr.sin_addr)
            let destination = addr
            thread = JoinableThread { [self] in
                do {
                    if cpu >= 0 && cnm_pin_thread(Int32(cpu)) != 0 { throw LoopbackBench.BenchError("pinning the sender to CPU \(cpu) failed") }
                    try NetworkNamespace.enter(ns)
                } catch {
                    failure.withLockChecked { $0 = "sender: \(error)" }
                    return
                }
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else {
                    failure.withLockChecked { $0 = "sender: socket() failed: errno \(errno)" }
                    return
                }
                defer { close(fd) }
                var dst = destination
                let c = withUnsafePointer(to: &dst) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard c == 0 else {
                    failure.withLockChecked { $0 = "sender: connect() failed: errno \(errno)" }
                    return
                }
                let bytes = [UInt8](repeating: 0x4E, count: payload)
                var total = 0
                while !stopFlag.load(ordering: .relaxed) {
                    let n = bytes.withUnsafeBytes { cnm_udp_send_batch(fd, $0.baseAddress, UInt32(payload), UInt32(batch)) }
                    if n < 0 {
                        if n == -ECONNREFUSED { continue }  // no listener yet: an ICMP came back
                        failure.withLockChecked { $0 = "sender: sendmmsg failed: errno \(-n)" }
                        break
                    }
                    total += Int(n)
                    sent.store(total, ordering: .relaxed)
                }
            }
        }

        func stop() throws -> Int {
            stopFlag.store(true, ordering: .relaxed)
            thread?.join()
            if let f = failure.withLockChecked({ $0 }) { throw LoopbackBench.BenchError(f) }
            return sent.load(ordering: .relaxed)
        }
    }

    /// An Ethernet/IPv4/UDP frame from B to A carrying `payload` bytes (UDP checksum 0).
    static func udpFrame(lab: VethLab, payload: Int) -> [UInt8] {
        UDPFrames.ipv4(payload: [UInt8](repeating: 0x4E, count: payload), addresses: .bToA(lab))
    }

    package static func xdpPhase(_ lab: VethLab, seconds: Double, payload: Int, tuning: Tuning) throws -> Phase {
        let spin = tuning.spin
        var config = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .copy, frameSize: tuning.frameSize)
        config.attachMode = tuning.attach
        config.frameCount = tuning.frames
        config.receiveRingSize = tuning.ringSize
        config.useNeedWakeup = tuning.needWakeup
        config.busyPoll = tuning.busyPoll
        config.coalescingMicroseconds = tuning.coalescingMicroseconds
        var rx: XDPSocket
        do {
            rx = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
        } catch { throw LoopbackBench.BenchError("AF_XDP phase: \(error)") }
        let pool = rx.pool
        var phase = Phase()
        phase.attach = rx.programIsNative ? "native" : "generic"
        let drops0 = drops(lab)
        var messages: [Message] = []
        messages.reserveCapacity(tuning.rxBatch)
        var payloadBytes = 0
        func receiveBatch(_ rx: inout XDPSocket) throws -> Int {
            let n: Int
            if tuning.messageAPI {
                n = rx.receive(into: &messages, limit: tuning.rxBatch)
                // Each message gives its frame back as it goes.
                messages.removeAll(keepingCapacity: true)
            } else {
                n = rx.receive(limit: tuning.rxBatch) { _, payload, _ in payloadBytes &+= payload.count }
            }
            return n
        }

        let cpu0 = machineBusyNs()
        let process0 = cnm_process_cpu_ns()
        let thread0 = cnm_thread_cpu_ns()
        let t0 = LoopbackBench.now
        let blaster = Blaster(lab: lab, payload: payload, xdp: tuning.xdpSender, batch: tuning.txBatch, cpu: tuning.txCPU)
        while LoopbackBench.now - t0 < seconds && !tuning.shouldStop() {
            if try receiveBatch(&rx) == 0 {
                // The ring can be watched without a system call: spin a little before
                // sleeping, so a steady stream costs fewer wakeups.
                var spins = 0
                while spins < spin && !rx.hasFramesReady() {
                    cnm_cpu_relax()
                    spins += 1
                }
                if spins == spin { _ = rx.wait(timeoutMilliseconds: 10) }
            }
        }
        phase.sent = try blaster.stop()
        var idleSince = LoopbackBench.now
        while LoopbackBench.now - idleSince < 0.05 {
            if try receiveBatch(&rx) > 0 { idleSince = LoopbackBench.now } else { _ = rx.wait(timeoutMilliseconds: 5) }
        }
        phase.seconds = LoopbackBench.now - t0
        phase.busyNs = machineBusyNs() - cpu0
        phase.processNs = Double(cnm_process_cpu_ns() - process0)
        phase.receiverNs = Double(cnm_thread_cpu_ns() - thread0)
        phase.received = rx.counters.messages
        phase.coalescingPauses = rx.counters.coalescingPauses
        phase.pollWaits = rx.counters.pollWaits
        if let s = try? rx.statistics() {
            phase.kernelDropped = Int(s.rxLost)
            phase.rxDropped = Int(s.rxDropped)
            phase.rxRingFull = Int(s.rxRingFull)
            phase.fillRingEmpty = Int(s.rxFillRingEmptyDescriptors)
        }
        phase.vethDropped = drops(lab) - drops0
        _ = consume rx
        phase.inFlightAfter = pool.inFlight
        return phase
    }

    package static func udpPhase(_ lab: VethLab, seconds: Double, payload: Int, tuning: Tuning) throws -> Phase {
        let fd: Int32 = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(LoopbackBench.BenchError) -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw LoopbackBench.BenchError("UDP phase: socket() failed: errno \(errno)") }
            var size: Int32 = 4 << 20
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(9999).bigEndian
            let b = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard b == 0 else {
                close(fd)
                throw LoopbackBench.BenchError("UDP phase: bind() failed: errno \(errno)")
            }
            return fd
        }
        defer { close(fd) }
        var phase = Phase()
        let slot = 2048
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: slot * 64, alignment: 64)
        defer { buffers.deallocate() }
        var lengths = [UInt32](repeating: 0, count: 64)
        var received = 0
        let udpPause = UInt32(tuning.udpCoalescingMicroseconds)
        func receiveBatch() throws -> Int {
            let n = lengths.withUnsafeMutableBufferPointer { cnm_udp_recv_batch(fd, buffers, UInt32(slot), $0.baseAddress, 64) }
            if n < 0 { throw LoopbackBench.BenchError("UDP phase: recvmmsg failed: errno \(-n)") }
            received += Int(n)
            return Int(n)
        }
        let errors0 = (try? NetworkNamespace.run(in: lab.namespaceA!) { udpReceiveBufferErrors() }) ?? 0
        let cpu0 = machineBusyNs()
        let process0 = cnm_process_cpu_ns()
        let thread0 = cnm_thread_cpu_ns()
        let t0 = LoopbackBench.now
        let blaster = Blaster(lab: lab, payload: payload, xdp: tuning.xdpSender, batch: tuning.txBatch, cpu: tuning.txCPU)
        while LoopbackBench.now - t0 < seconds && !tuning.shouldStop() {
            if try receiveBatch() == 0 {
                if udpPause > 0 {
                    cnm_sleep_us(udpPause)
                    if try receiveBatch() > 0 { continue }
                }
                _ = cnm_poll_in(fd, 10)
            }
        }
        phase.sent = try blaster.stop()
        var idleSince = LoopbackBench.now
        while LoopbackBench.now - idleSince < 0.05 {
            if try receiveBatch() > 0 { idleSince = LoopbackBench.now } else { _ = cnm_poll_in(fd, 5) }
        }
        phase.seconds = LoopbackBench.now - t0
        phase.busyNs = machineBusyNs() - cpu0
        phase.processNs = Double(cnm_process_cpu_ns() - process0)
        phase.receiverNs = Double(cnm_thread_cpu_ns() - thread0)
        phase.received = received
        phase.kernelDropped = ((try? NetworkNamespace.run(in: lab.namespaceA!) { udpReceiveBufferErrors() }) ?? 0) - errors0
        return phase
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).reversed())
    }
}
