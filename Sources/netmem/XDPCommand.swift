import ArgumentParser
import CNetmemLinux
import Glibc
import Netmem
import NetmemDevice
import NetmemXDP

struct XDPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xdp",
        abstract: "Receive on one queue with AF_XDP into a UMEM that is a Netmem area; show ring statistics.",
        discussion: """
            Attaches a minimal redirect program (through a BPF link: it goes away with the process), binds an \
            AF_XDP socket to the queue, and splits UDP datagrams into headers and payload fragments whose \
            tokens go back at once. Frames that are not UDP are counted by reason. Ctrl-C ends with final \
            statistics. Needs root (CAP_NET_ADMIN, CAP_BPF).
            """
    )

    @Option(help: "The interface to receive on.")
    var ifname: String

    @Option(help: "The receive queue.")
    var queue: UInt32 = 0

    @Option(help: "copy or zerocopy (zero-copy needs driver support).")
    var mode: String = "copy"

    @Option(name: .customLong("frame-size"), parsing: .unconditional, help: "UMEM frame size: 2048 or 4096.")
    var frameSize: Int = 2048

    @Option(parsing: .unconditional, help: "Bytes kept free in front of each frame, beyond the kernel's 256.")
    var headroom: Int = 0

    @Option(parsing: .unconditional, help: "Frames in the UMEM.")
    var frames: Int = 4096

    @Option(parsing: .unconditional, help: "Wake-up coalescing: microseconds to sleep, when the RX ring is empty, before waiting in poll(2); 0 is off.")
    var coalesceUs: Int = XDPConfiguration(interfaceName: "", queue: 0).coalescingMicroseconds

    @Option(parsing: .unconditional, help: "Stop after this many seconds (default: until Ctrl-C).")
    var duration: Double?

    mutating func validate() throws {
        guard XDPConfiguration.Mode(rawValue: mode) != nil else {
            throw ValidationError("--mode must be copy or zerocopy, got '\(mode)'")
        }
        if let d = duration, !(d > 0 && d <= 86_400) {
            throw ValidationError("--duration must be in (0, 86400] seconds, got \(d)")
        }
    }

    func run() throws {
        var config = XDPConfiguration(interfaceName: ifname, queue: queue, mode: XDPConfiguration.Mode(rawValue: mode)!,
                                      frameSize: frameSize, headroom: headroom)
        config.frameCount = frames
        config.coalescingMicroseconds = coalesceUs
        // Half the frames fit in the fill ring; the rest cover frames with the application.
        var ring = 8
        while ring * 4 <= frames && ring < 2048 { ring *= 2 }
        config.receiveRingSize = ring
        var rx: XDPSocket
        do { rx = try XDPSocket(config) } catch { throw CLIError("netmem xdp: \(error)") }
        CLIStopSignal.install()
        print("receiving on \(ifname) queue \(queue), \(mode) mode, program \(rx.programIsNative ? "in the driver" : "generic"), "
              + "UMEM \(rx.provider.area.chunkCount) × \(rx.provider.chunkSize) bytes (area \(rx.provider.area.id))")
        let start = CLIClock.now
        let deadline = duration.map { start + $0 }
        let live = isatty(STDERR_FILENO) == 1
        let interval = live ? 0.25 : 5.0
        var lastPrint = start
        var lastPackets = 0
        var printedLive = false
        var messages: [Message] = []
        messages.reserveCapacity(256)
        while !CLIStopSignal.isRequested {
            let now = CLIClock.now
            if let deadline, now >= deadline { break }
            messages.removeAll(keepingCapacity: true)
            if rx.receive(into: &messages, limit: 128) == 0 {
                _ = rx.wait(timeoutMilliseconds: 50)
            }
            // Each message gives its frame back as it goes.
            messages.removeAll(keepingCapacity: true)
            if now - lastPrint >= interval {
                let line = progressLine(rx, packets: rx.counters.received, pps: Double(rx.counters.received - lastPackets) / (now - lastPrint))
                if live {
                    CLIOutput.error("\r\u{1B}[2K" + line, newline: false)
                    printedLive = true
                } else {
                    CLIOutput.error(line)
                }
                lastPrint = now
                lastPackets = rx.counters.received
            }
        }
        if printedLive { CLIOutput.error("") }
        let seconds = CLIClock.now - start
        let c = rx.counters
        print("\(c.received) frames in \(CLIFormat.fixed(seconds, 1)) s (\(CLIFormat.fixed(Double(c.received) / Swift.max(seconds, 1e-9), 0)) pps): "
              + "\(c.messages) UDP datagrams, \(c.payloadBytes) payload bytes, \(c.malformed.total) malformed"
              + (c.malformed.total > 0 ? " (\(c.malformed))" : ""))
        print("rings: fill filled=\(c.filled) starved=\(c.fillStarved) wakeups=\(c.wakeups) coalescing_pauses=\(c.coalescingPauses) poll_waits=\(c.pollWaits) invalid_descs=\(c.invalidDescriptors); "
              + "levels fill=\(rx.ringLevels.fill) rx=\(rx.ringLevels.rx)")
        if let s = try? rx.statistics() {
            print("kernel: " + s.fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        }
        print("pool: \(rx.pool.stats)")
    }

    private func progressLine(_ rx: borrowing XDPSocket, packets: Int, pps: Double) -> String {
        let stats = try? rx.statistics()
        let levels = rx.ringLevels
        return "\(packets) frames, \(CLIFormat.fixed(pps, 0)) pps, malformed \(rx.counters.malformed.total), "
            + "fill ring \(levels.fill) (empty \(stats?.rxFillRingEmptyDescriptors ?? 0)), "
            + "rx ring \(levels.rx) (full \(stats?.rxRingFull ?? 0)), rx_dropped \(stats?.rxDropped ?? 0)"
    }
}
