import ArgumentParser

struct BenchRxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rx", abstract: "Not built yet.")
}
