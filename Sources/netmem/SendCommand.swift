import ArgumentParser
import Glibc
import NetmemURing
import SystemPackage

struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send bytes or Netmem frames to a TCP receiver (such as `netmem recv`).")

    @Option(help: "Receiver address, ADDR:PORT.")
    var connect: String

    @Flag(help: "Send Netmem frames (header + payload) instead of raw bytes.")
    var framed = false

    @Option(help: "Payload bytes to send (default 1G; with --file, the whole file).")
    var bytes: CLIByteSize?

    @Option(name: .customLong("message-size"), help: "Bytes per send (per frame when framed).")
    var messageSize: CLIByteSize = CLIByteSize(bytes: 1 << 20)

    @Flag(help: "Send from registered buffers with SEND_ZC (io_uring zero-copy send).")
    var zerocopy = false

    @Option(help: "Send this file's contents.")
    var file: String?

    @Flag(inversion: .prefixedNo, help: "Set a CRC-32C on each frame's payload.")
    var crc = true

    @Flag(help: "Print the SHA-256 of the payload sent.")
    var sha256 = false

    func validate() throws {
        guard messageSize.bytes > 0, messageSize.bytes <= Int(UInt32.max) else {
            throw ValidationError("--message-size must be 1 byte to 4 GiB - 1")
        }
    }

    func run() throws {
        CLIStopSignal.install()
        let address = try parseAddress(connect)
        let socket: FileDescriptor
        do {
            socket = try BlockingSocket.connect(to: address)
        } catch {
            throw CLIError("cannot connect to \(address): \(error)")
        }
        defer { try? socket.close() }
        var plan = CLISendPlan()
        plan.totalBytes = bytes?.bytes ?? (file == nil ? 1 << 30 : nil)
        plan.messageSize = messageSize.bytes
        plan.framed = framed
        plan.crc = crc
        plan.file = file
        plan.sha256 = sha256
        plan.zeroCopy = zerocopy
        let result: CLISendResult
        do {
            result = try CLISender.send(plan, to: socket)
            try BlockingSocket.shutdownWrite(socket)
        } catch {
            throw CLIError("sending to \(address) failed: \(error)")
        }
        var line = "sent \(CLIFormat.bytes(result.bytes)) in \(result.messages) \(framed ? "frames" : "sends") in "
            + "\(CLIFormat.fixed(result.seconds, 2)) s (\(CLIFormat.fixed(CLIFormat.gbit(bytes: result.bytes, seconds: result.seconds), 2)) Gbit/s)"
        if let sha = result.sha256 { line += ", sha256 \(sha)" }
        print(line)
        if let z = result.zeroCopy {
            print("zero-copy: \(z.zeroCopySends) SEND_ZC sends (\(z.fixedBufferSends) from registered buffers), "
                + "\(z.notifications) notifications, \(z.copiedByKernel) copied by the kernel anyway, \(z.plainSends) plain")
        }
    }
}
