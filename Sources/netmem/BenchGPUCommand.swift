import ArgumentParser
import NetmemGPU

struct BenchGPUCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu",
        abstract: "Unpack and bounce GB/s on a GPU (cuda[:N]) or the host stand-in (cuda:standin); each run ends with a verified message.")

    @Option(help: "cuda, cuda:N or cuda:standin.")
    var provider: CLIMemoryProvider = .gpu(GPUProviderSpec())

    @Option(name: .customLong("message-size"), parsing: .unconditional, help: "Bytes per message.")
    var messageSize: CLIByteSize = CLIByteSize(bytes: 1 << 20)

    @Option(name: .customLong("fragment-size"), parsing: .unconditional, help: "Bytes per fragment.")
    var fragmentSize: CLIByteSize = CLIByteSize(bytes: 4096)

    @Option(parsing: .unconditional, help: "Bytes moved per measurement.")
    var bytes: CLIByteSize = CLIByteSize(bytes: 1 << 30)

    @Option(name: .customLong("in-flight"), parsing: .unconditional, help: "Messages in flight.")
    var inFlight: Int = 8

    func run() throws {
        guard let spec = provider.gpu else { throw CLIError("bench gpu needs --provider cuda, cuda:N or cuda:standin") }
        var ok = true
        for r in try CLIGPUBench.run(spec: spec, messageSize: messageSize.bytes, fragmentSize: fragmentSize.bytes,
                                     totalBytes: bytes.bytes, inFlight: inFlight) {
            print(r)
            ok = ok && r.verified
        }
        if !ok { throw ExitCode(1) }
    }
}
