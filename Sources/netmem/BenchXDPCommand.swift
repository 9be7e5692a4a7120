import ArgumentParser
import CNetmemLinux
import Glibc
import Netmem
import NetmemDevice
import NetmemLab
import NetmemNamespace
import NetmemXDP
import Synchronization

struct BenchXDPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xdp",
        abstract: "AF_XDP receive beside a plain UDP socket, over a veth pair between two namespaces.",
        discussion: """
            Creates two network namespaces joined by a veth pair. For each phase a sender thread in the peer \
            namespace blasts 64-byte UDP payloads (AF_XDP TX in copy mode by default, or sendmmsg(2) with \
            --sender sendmmsg, whose own cost then dominates both phases); the receiver is first Netmem's AF_XDP path \
            (copy mode, header split, tokens returned), then a plain UDP socket with recvmmsg(2). Cost is \
            whole-machine busy CPU time (/proc/stat) per packet the application received. Target: ratio ≥ 1.5. \
            Needs root.
            """
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds for each phase.")
    var seconds: Double = 5

    @Option(help: "UDP payload bytes.")
    var payload: Int = 64

    @Option(help: "The sender in the peer namespace: xdp (AF_XDP TX, copy mode) or sendmmsg (a UDP socket).")
    var sender: String = "xdp"

    @Option(help: "Where the redirect program runs on the receiving veth: automatic (driver if it can), native or generic.")
    var attach: String = "automatic"

    @Option(help: "Times the AF_XDP receiver checks its RX ring (no system call) before sleeping in poll(2).")
    var spin: Int = 0

    @Option(help: "Which phases to run: both, xdp or udp (one alone is for profiling; the ratio needs both).")
    var phase: String = "both"

    @Option(help: "Frames the AF_XDP receiver takes per receive call.")
    var rxBatch: Int = 256

    @Option(help: "Slots in the AF_XDP fill and RX rings.")
    var ringSize: Int = 4096

    @Option(help: "Frames in the receiver's UMEM.")
    var frames: Int = 8192

    @Option(help: "UMEM frame size of the receiver: 2048 or 4096.")
    var frameSize: Int = 2048

    @Option(help: "Bind the AF_XDP receiver with XDP_USE_NEED_WAKEUP: on or off.")
    var needWakeup: String = "on"

    @Option(help: "Busy-poll the AF_XDP receiver's queue for this many microseconds per call (SO_BUSY_POLL with SO_PREFER_BUSY_POLL); 0 is off.")
    var busyPoll: Int = 0

    @Option(help: "Packets per busy poll (SO_BUSY_POLL_BUDGET).")
    var busyPollBudget: Int = 64

    @Option(help: "Frames the AF_XDP sender queues per kick.")
    var txBatch: Int = 64

    @Option(help: "The AF_XDP receive API: callback (headers and payload lent in place for the call) or messages (Message values that own their payload's token, headers copied).")
    var api: String = "callback"

    @Option(help: "CPU to pin the receiving thread to (both phases); -1 leaves it to the scheduler.")
    var rxCPU: Int = -1

    @Option(help: "CPU to pin the sending thread to (both phases); -1 leaves it to the scheduler.")
    var txCPU: Int = -1

    mutating func validate() throws {
        guard api == "callback" || api == "messages" else { throw ValidationError("--api must be callback or messages, got '\(api)'") }
        guard ["both", "xdp", "udp"].contains(phase) else { throw ValidationError("--phase must be both, xdp or udp, got '\(phase)'") }
        guard rxBatch >= 1, rxBatch <= 4096 else { throw ValidationError("--rx-batch must be 1 to 4096, got \(rxBatch)") }
        guard txBatch >= 1, txBatch <= 2048 else { throw ValidationError("--tx-batch must be 1 to 2048, got \(txBatch)") }
        guard frameSize == 2048 || frameSize == 4096 else { throw ValidationError("--frame-size must be 2048 or 4096, got \(frameSize)") }
        guard needWakeup == "on" || needWakeup == "off" else { throw ValidationError("--need-wakeup must be on or off, got '\(needWakeup)'") }
        guard busyPoll >= 0, busyPoll <= 1_000_000 else { throw ValidationError("--busy-poll must be 0 to 1000000 µs, got \(busyPoll)") }
        guard busyPollBudget >= 1, busyPollBudget <= 65535 else { throw ValidationError("--busy-poll-budget must be 1 to 65535, got \(busyPollBudget)") }
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        for (name, cpu) in [("--rx-cpu", rxCPU), ("--tx-cpu", txCPU)] where cpu < -1 || cpu >= cpus {
            throw ValidationError("\(name) must be -1 or a CPU from 0 to \(cpus - 1), got \(cpu)")
        }
        guard spin >= 0, spin <= 1_000_000 else { throw ValidationError("--spin must be 0 to 1000000, got \(spin)") }
        guard XDPConfiguration.AttachMode(rawValue: attach) != nil else {
            throw ValidationError("--attach must be automatic, native or generic, got '\(attach)'")
        }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600], got \(seconds)") }
        guard payload >= 1, payload <= 1400 else { throw ValidationError("--payload must be 1 to 1400 bytes, got \(payload)") }
        guard sender == "sendmmsg" || sender == "xdp" else { throw ValidationError("--sender must be sendmmsg or xdp, got '\(sender)'") }
    }

    func run() throws {
        guard geteuid() == 0 else {
            throw CLIError("netmem bench xdp needs root: it creates network namespaces and attaches an XDP program")
        }
        CLIStopSignal.install()
        let lab = try VethLab(tag: "bx", layout: .twoNamespaces)
        defer { lab.remove() }
        if !json {
            print("netmem bench xdp: \(payload)-byte UDP payloads over veth \(lab.ifB) → \(lab.ifA), \(seconds) s per phase, "
                  + "sender \(sender)")
        }
        var tuning = XDPBench.Tuning(xdpSender: sender == "xdp")
        tuning.attach = XDPConfiguration.AttachMode(rawValue: attach)!
        tuning.spin = spin
        tuning.rxBatch = rxBatch
        tuning.ringSize = ringSize
        tuning.frames = frames
        tuning.frameSize = frameSize
        tuning.needWakeup = needWakeup == "on"
        tuning.busyPoll = busyPoll > 0 ? XDPConfiguration.BusyPoll(microseconds: busyPoll, budget: busyPollBudget) : nil
        tuning.txBatch = txBatch
        tuning.rxCPU = rxCPU
        tuning.txCPU = txCPU
        tuning.messageAPI = api == "messages"
        if rxCPU >= 0 {
            let r = cnm_pin_thread(Int32(rxCPU))
            guard r == 0 else { throw CLIError("pinning the receiver to CPU \(rxCPU) failed: errno \(-r)") }
        }
        let xdp = phase == "udp" ? XDPBench.Phase() : try XDPBench.xdpPhase(lab, seconds: seconds, payload: payload, tuning: tuning)
        let udp = phase == "xdp" ? XDPBench.Phase() : try XDPBench.udpPhase(lab, seconds: seconds, payload: payload, tuning: tuning)
        let ratio = xdp.cpuNsPerPacket > 0 ? udp.cpuNsPerPacket / xdp.cpuNsPerPacket : 0
        let results: [(String, Double)] = [
            ("xdp_pps", xdp.pps),
            ("udp_socket_pps", udp.pps),
            ("xdp_cpu_ns_per_packet", xdp.cpuNsPerPacket),
            ("udp_cpu_ns_per_packet", udp.cpuNsPerPacket),
            ("ratio", ratio),
            // This process's CPU time (sender and receiver threads) per packet: robust
            // against other load on the machine, blind to softirq work charged elsewhere.
            ("xdp_process_cpu_ns_per_packet", xdp.processNsPerPacket),
            ("udp_process_cpu_ns_per_packet", udp.processNsPerPacket),
            ("process_ratio", xdp.processNsPerPacket > 0 ? udp.processNsPerPacket / xdp.processNsPerPacket : 0),
            // The receiving thread alone (user + system time of the application's loop).
            ("xdp_receiver_cpu_ns_per_packet", xdp.receiverNsPerPacket),
            ("udp_receiver_cpu_ns_per_packet", udp.receiverNsPerPacket),
            ("xdp_sent", Double(xdp.sent)),
            ("xdp_received", Double(xdp.received)),
            ("xdp_lost", Double(xdp.sent - xdp.received)),
            ("xdp_kernel_dropped", Double(xdp.kernelDropped)),
            ("xdp_fill_ring_empty", Double(xdp.fillRingEmpty)),
            ("veth_dropped", Double(xdp.vethDropped)),
            // Lost frames that XDP_STATISTICS does not name (the veth counts XDP drops too,
            // so veth_dropped overlaps xdp_kernel_dropped).
            ("xdp_lost_unaccounted", Double(xdp.sent - xdp.received - xdp.kernelDropped)),
            ("xdp_rx_dropped", Double(xdp.rxDropped)),
            ("xdp_rx_ring_full", Double(xdp.rxRingFull)),
            ("xdp_pool_in_flight_after", Double(xdp.inFlightAfter)),
            ("udp_sent", Double(udp.sent)),
            ("udp_received", Double(udp.received)),
            ("udp_lost", Double(udp.sent - udp.received)),
            ("udp_rcvbuf_errors", Double(udp.kernelDropped)),
        ]
        let text: [(String, String)] = [("sender", sender), ("attach", xdp.attach), ("phase", phase),
                                        ("need_wakeup", needWakeup), ("api", api)]
        let settings: [(String, Double)] = [("rx_batch", Double(rxBatch)), ("ring_size", Double(ringSize)),
                                            ("frames", Double(frames)), ("frame_size", Double(frameSize)),
                                            ("busy_poll_us", Double(busyPoll)), ("busy_poll_budget", Double(busyPollBudget)),
                                            ("tx_batch", Double(txBatch)), ("rx_cpu", Double(rxCPU)), ("tx_cpu", Double(txCPU))]
        if json {
            print("{" + (text.map { "\"\($0.0)\": \"\($0.1)\"" } + (results + settings).map { "\"\($0.0)\": \(format($0.1))" })
                .joined(separator: ", ") + "}")
        } else {
            for (k, v) in results { print(k.padding(28) + format(v)) }
            print("settings: " + (text.map { "\($0.0) \($0.1)" } + settings.map { "\($0.0) \(format($0.1))" }).joined(separator: ", "))
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : CLIFormat.fixed(v, 3)
    }
}

/// The two phases of `netmem bench xdp`.
enum XDPBench {
    /// The knobs `netmem bench xdp` turns.
    struct Tuning {
        var xdpSender: Bool
        var attach: XDPConfiguration.AttachMode = .automatic
        var spin = 0
        var rxBatch = 256
        var ringSize = 4096
        var frames = 8192
        var frameSize = 2048
        var needWakeup = true
        var busyPoll: XDPConfiguration.BusyPoll? = nil
        var txBatch = 64
        var rxCPU = -1
        var txCPU = -1
        /// Receive into `Message`s (a copy of the headers, arrays per datagram) instead of
        /// the callback API.
        var messageAPI = false
    }

    struct Phase {
        var sent = 0
        var received = 0
        var seconds = 0.0
        var busyNs = 0.0
        var processNs = 0.0
        var processNsPerPacket: Double { received > 0 ? processNs / Double(received) : 0 }
        var receiverNs = 0.0
        var receiverNsPerPacket: Double { received > 0 ? receiverNs / Double(received) : 0 }
        var kernelDropped = 0
        var rxDropped = 0
        var rxRingFull = 0
        var fillRingEmpty = 0
        var vethDropped = 0
        var inFlightAfter = 0
        var attach = ""
        var pps: Double { seconds > 0 ? Double(received) / seconds : 0 }
        var cpuNsPerPacket: Double { received > 0 ? busyNs / Double(received) : 0 }
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
                        if cpu >= 0 && cnm_pin_thread(Int32(cpu)) != 0 { throw CLIError("pinning the sender to CPU \(cpu) failed") }
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
                        let end = CLIClock.now + 1
                        while tx.counters.completed < tx.counters.transmitted && CLIClock.now < end {
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
                    if cpu >= 0 && cnm_pin_thread(Int32(cpu)) != 0 { throw CLIError("pinning the sender to CPU \(cpu) failed") }
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
            if let f = failure.withLockChecked({ $0 }) { throw CLIError(f) }
            return sent.load(ordering: .relaxed)
        }
    }

    /// An Ethernet/IPv4/UDP frame from B to A carrying `payload` bytes (UDP checksum 0).
    static func udpFrame(lab: VethLab, payload: Int) -> [UInt8] {
        func ip(_ s: String) -> [UInt8] { s.split(separator: ".").map { UInt8($0)! } }
        var f = lab.macA + lab.macB + [0x08, 0x00]
        let total = 20 + 8 + payload
        var header: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 17, 0, 0]
        header += ip(lab.ipB) + ip(lab.ipA)
        var sum = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += Int(header[i]) << 8 | Int(header[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        let csum = 0xFFFF - sum
        header[10] = UInt8(csum >> 8)
        header[11] = UInt8(csum & 0xFF)
        f += header
        let ul = 8 + payload
        f += [0x30, 0x39, 0x27, 0x0F, UInt8(ul >> 8), UInt8(ul & 0xFF), 0, 0]
        return f + [UInt8](repeating: 0x4E, count: payload)
    }

    static func xdpPhase(_ lab: VethLab, seconds: Double, payload: Int, tuning: Tuning) throws -> Phase {
        let spin = tuning.spin
        var config = XDPConfiguration(interfaceName: lab.ifA, queue: 0, mode: .copy, frameSize: tuning.frameSize)
        config.attachMode = tuning.attach
        config.frameCount = tuning.frames
        config.receiveRingSize = tuning.ringSize
        config.useNeedWakeup = tuning.needWakeup
        config.busyPoll = tuning.busyPoll
        var rx: XDPSocket
        do {
            rx = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(XDPError) -> XDPSocket in try XDPSocket(config) }
        } catch { throw CLIError("AF_XDP phase: \(error)") }
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
        let t0 = CLIClock.now
        let blaster = Blaster(lab: lab, payload: payload, xdp: tuning.xdpSender, batch: tuning.txBatch, cpu: tuning.txCPU)
        while CLIClock.now - t0 < seconds && !CLIStopSignal.isRequested {
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
        var idleSince = CLIClock.now
        while CLIClock.now - idleSince < 0.05 {
            if try receiveBatch(&rx) > 0 { idleSince = CLIClock.now } else { _ = rx.wait(timeoutMilliseconds: 5) }
        }
        phase.seconds = CLIClock.now - t0
        phase.busyNs = machineBusyNs() - cpu0
        phase.processNs = Double(cnm_process_cpu_ns() - process0)
        phase.receiverNs = Double(cnm_thread_cpu_ns() - thread0)
        phase.received = rx.counters.messages
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

    static func udpPhase(_ lab: VethLab, seconds: Double, payload: Int, tuning: Tuning) throws -> Phase {
        let fd: Int32 = try NetworkNamespace.run(in: lab.namespaceA!) { () throws(CLIError) -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw CLIError("UDP phase: socket() failed: errno \(errno)") }
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
                throw CLIError("UDP phase: bind() failed: errno \(errno)")
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
        func receiveBatch() throws -> Int {
            let n = lengths.withUnsafeMutableBufferPointer { cnm_udp_recv_batch(fd, buffers, UInt32(slot), $0.baseAddress, 64) }
            if n < 0 { throw CLIError("UDP phase: recvmmsg failed: errno \(-n)") }
            received += Int(n)
            return Int(n)
        }
        let errors0 = (try? NetworkNamespace.run(in: lab.namespaceA!) { udpReceiveBufferErrors() }) ?? 0
        let cpu0 = machineBusyNs()
        let process0 = cnm_process_cpu_ns()
        let thread0 = cnm_thread_cpu_ns()
        let t0 = CLIClock.now
        let blaster = Blaster(lab: lab, payload: payload, xdp: tuning.xdpSender, batch: tuning.txBatch, cpu: tuning.txCPU)
        while CLIClock.now - t0 < seconds && !CLIStopSignal.isRequested {
            if try receiveBatch() == 0 { _ = cnm_poll_in(fd, 10) }
        }
        phase.sent = try blaster.stop()
        var idleSince = CLIClock.now
        while CLIClock.now - idleSince < 0.05 {
            if try receiveBatch() > 0 { idleSince = CLIClock.now } else { _ = cnm_poll_in(fd, 5) }
        }
        phase.seconds = CLIClock.now - t0
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
