import ArgumentParser

@main
struct NetmemCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netmem",
        abstract: "Land network data in memory you choose, and recycle it through a page pool.",
        subcommands: [
            DemoCommand.self, RecvCommand.self, SendCommand.self, LoadCommand.self,
            XDPCommand.self, KernelCommand.self, DoctorCommand.self, BenchCommand.self, NCCLCommand.self,
        ]
    )
}
