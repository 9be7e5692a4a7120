import ArgumentParser
import Glibc
import NetmemSHA256
import NetmemSession
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

    @Option(parsing: .unconditional, help: "Payload bytes to send (default 1G; with --file, the whole file).")
    var bytes: CLIByteSize?

    @Option(name: .customLong("message-size"), parsing: .unconditional, help: "Bytes per send (per frame when framed).")
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
        // The file first: a missing file is reported before anything connects.
        var file: FileDescriptor?
        if let path = self.file {
            do { file = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec) } catch {
                throw CLIError("cannot read '\(path)': \(error)")
            }
        }
        defer { try? file?.close() }
        let socket: FileDescriptor
        do {
            socket = try BlockingSocket.connect(to: address)
        } catch {
            throw CLIError("cannot connect to \(address): \(error)")
        }
        defer { try? socket.close() }
        var plan = StreamSender.Plan(source: file.map { .file($0) } ?? .pattern,
                                     totalBytes: bytes?.bytes ?? (file == nil ? 1 << 30 : nil),
                                     messageSize: messageSize.bytes, framed: framed)
        plan.checksums = crc
        plan.zeroCopy = zerocopy
        var sha = sha256 ? SHA256() : nil
        let observer = StreamSender.Observer(payload: sha256 ? { sha!.update(bufferPointer: $0) } : nil)
        let result: StreamSender.Result
        do {
            result = try StreamSender.send(plan, to: socket, observer: observer, shouldStop: { CLIStopSignal.isRequested })
            try BlockingSocket.shutdownWrite(socket)
        } catch {
            throw CLIError("sending to \(address) failed: \(error)")
        }
        let seconds = Double(result.duration.components.seconds) + Double(result.duration.components.attoseconds) / 1e18
        var line = "sent \(CLIFormat.bytes(result.bytes)) in \(result.messages) \(framed ? "frames" : "sends") in "
            + "\(CLIFormat.fixed(seconds, 2)) s (\(CLIFormat.fixed(CLIFormat.gbit(bytes: result.bytes, seconds: seconds), 2)) Gbit/s)"
        if let digest = sha?.finalize() { line += ", sha256 \(CLIFormat.hex(digest))" }
        print(line)
        if let z = result.zeroCopy {
            print("zero-copy: \(z.zeroCopySends) SEND_ZC sends (\(z.fixedBufferSends) from registered buffers), "
                + "\(z.notifications) notifications, \(z.copiedByKernel) copied by the kernel anyway, \(z.plainSends) plain")
        }
    }
}
