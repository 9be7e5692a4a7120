import ArgumentParser

struct BenchXDPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "xdp", abstract: "Not built yet.")
}
