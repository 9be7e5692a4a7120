import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Netmem beside its baselines; --json prints one JSON object.",
        subcommands: [BenchPoolCommand.self, BenchCRCCommand.self, BenchDevmemCommand.self, BenchRxCommand.self, BenchXDPCommand.self,
                      BenchGPUCommand.self, BenchChurnCommand.self, BenchFairnessCommand.self, BenchNCCLCommand.self]
    )
}
