import ArgumentParser
import CNetmemLinux
import Glibc
import Netmem
import NetmemDevice
import NetmemLab
import NetmemNamespace
import NetmemBench
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
    var ringSize: Int = 8192

    @Option(help: "Frames in the receiver's UMEM.")
    var frames: Int = 16384

    @Option(help: "UMEM frame size of the receiver: 2048 or 4096.")
    var frameSize: Int = 2048

    @Option(help: "Bind the AF_XDP receiver with XDP_USE_NEED_WAKEUP: on or off.")
    var needWakeup: String = "on"

    @Option(help: "Busy-poll the AF_XDP receiver's queue for this many microseconds per call (SO_BUSY_POLL with SO_PREFER_BUSY_POLL); 0 is off.")
    var busyPoll: Int = 0

    @Option(help: "Packets per busy poll (SO_BUSY_POLL_BUDGET).")
    var busyPollBudget: Int = 64

    @Option(help: "Wake-up coalescing of the AF_XDP receiver: microseconds it sleeps, when its RX ring is empty, before it waits in poll(2) (XDPConfiguration.coalescingMicroseconds); 0 is off.")
    var coalesceUs: Int = XDPConfiguration(interfaceName: "", queue: 0).coalescingMicroseconds

    @Option(help: "The same pause for the UDP socket receiver before its poll(2), to see what coalescing alone gives a plain socket; 0 (the default) is the plain socket loop.")
    var udpCoalesceUs: Int = 0

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
        for (name, us) in [("--coalesce-us", coalesceUs), ("--udp-coalesce-us", udpCoalesceUs)] where us < 0 || us > 1_000_000 {
            throw ValidationError("\(name) must be 0 to 1000000 µs, got \(us)")
        }
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
        tuning.coalescingMicroseconds = coalesceUs
        tuning.udpCoalescingMicroseconds = udpCoalesceUs
        tuning.rxCPU = rxCPU
        tuning.txCPU = txCPU
        tuning.messageAPI = api == "messages"
        tuning.shouldStop = { CLIStopSignal.isRequested }
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
            ("xdp_coalescing_pauses", Double(xdp.coalescingPauses)),
            ("xdp_poll_waits", Double(xdp.pollWaits)),
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
                                            ("coalesce_us", Double(coalesceUs)), ("udp_coalesce_us", Double(udpCoalesceUs)),
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
