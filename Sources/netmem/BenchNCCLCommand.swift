import ArgumentParser
import Glibc
import NetmemNCCLCheck

struct BenchNCCLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nccl",
        abstract: "An NCCL net plugin over one comm beside a blocking TCP socket pair, same two processes, same run.")

    @Option(help: "The plugin library (default: libnccl-net-netmem.so beside this executable).")
    var plugin: String?

    @Option(name: .customLong("message-size"), help: "Bytes per message.")
    var messageSize: CLIByteSize = CLIByteSize(bytes: 4 << 20)

    @Option(name: .customLong("in-flight"), help: "Messages in flight.")
    var inFlight: Int = 8

    @Option(help: "Bytes moved per phase (plugin, then socket pair).")
    var bytes: CLIByteSize = CLIByteSize(bytes: 2 << 30)

    @Option(help: "Runs of both phases; figures are medians.")
    var runs: Int = 1

    @Option(help: "When a pass over the requests made no progress: yield (as NCCL's proxy thread) or sleep (50 µs).")
    var poll: String = "yield"

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard messageSize.bytes > 0, messageSize.bytes <= 1 << 30 else { throw ValidationError("--message-size must be 1 B to 1 GiB") }
        guard (1...32).contains(inFlight) else { throw ValidationError("--in-flight must be from 1 to 32") }
        guard bytes.bytes >= messageSize.bytes else { throw ValidationError("--bytes must be at least one message") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be from 1 to 20") }
        guard poll == "yield" || poll == "sleep" else { throw ValidationError("--poll is yield or sleep") }
    }

    static func besideExecutable(_ name: String) -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/" + name
    }

    func run() throws {
        let path = plugin ?? Self.besideExecutable("libnccl-net-netmem.so")
        var options = NCCLBench.Options(plugin: path)
        options.messageSize = messageSize.bytes
        options.inFlight = inFlight
        options.messages = bytes.bytes / messageSize.bytes
        options.runs = runs
        options.poll = poll
        options.peerArguments = ["nccl", "bench-peer", "--plugin", path, "--message-size", String(options.messageSize),
                                 "--in-flight", String(inFlight), "--messages", String(options.messages),
                                 "--runs", String(runs), "--poll", poll]
        let report = try NCCLBench.run(options)
        print(json ? report.json : report.text)
    }
}

/// The receiving process of `bench nccl` (started by it; not for direct use).
struct NCCLBenchPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-peer", shouldDisplay: false)

    @Option var plugin: String
    @Option(name: .customLong("message-size")) var messageSize: Int
    @Option(name: .customLong("in-flight")) var inFlight: Int
    @Option var messages: Int
    @Option var runs: Int
    @Option var poll: String
    @Option(name: .customLong("control-fd")) var controlFD: Int32

    func run() throws {
        var options = NCCLBench.Options(plugin: plugin)
        options.messageSize = messageSize
        options.inFlight = inFlight
        options.messages = messages
        options.runs = runs
        options.poll = poll
        let status = NCCLBench.runPeer(plugin: plugin, options: options, controlFD: controlFD)
        if status != 0 { throw ExitCode(status) }
    }
}
