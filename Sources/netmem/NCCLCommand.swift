import ArgumentParser
import Glibc
import NetmemNCCLCheck

struct NCCLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nccl",
        abstract: "Check an NCCL network plugin (libnccl-net-netmem.so or any v11 plugin).",
        subcommands: [NCCLCheckCommand.self, NCCLPeerCommand.self, NCCLBenchPeerCommand.self]
    )
}

struct NCCLCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Drive a plugin as NCCL does, as two processes over loopback, and report every case.")

    @Option(help: "The plugin library (a .so exporting ncclNetPlugin_v11).")
    var plugin: String

    @Option(help: "Seed of the random sizes, contents and handles.")
    var seed: UInt64 = 0x4E43_434C

    @Option(help: "Comm pairs per direction for the several-comms case.")
    var comms: Int = 3

    @Flag(help: "Print one JSON object instead of the summary.")
    var json = false

    func validate() throws {
        guard (1...16).contains(comms) else { throw ValidationError("--comms must be from 1 to 16") }
    }

    func run() throws {
        let report = NCCLCheck.run(.init(plugin: plugin, seed: seed, comms: comms,
                                         peerArguments: ["nccl", "check-peer", "--plugin", plugin, "--seed", String(seed),
                                                         "--comms", String(comms)]))
        print(json ? report.json : report.text)
        if !report.passed { throw ExitCode(1) }
    }
}

/// The other process of `nccl check` (started by it; not for direct use).
struct NCCLPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-peer", shouldDisplay: false)

    @Option var plugin: String
    @Option var seed: UInt64
    @Option var comms: Int
    @Option(name: .customLong("control-fd")) var controlFD: Int32

    func run() throws {
        let status = NCCLCheck.runPeer(plugin: plugin, seed: seed, comms: comms, controlFD: controlFD)
        if status != 0 { throw ExitCode(status) }
    }
}
