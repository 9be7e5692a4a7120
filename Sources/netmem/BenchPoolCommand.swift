import ArgumentParser

struct BenchPoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool", abstract: "Not built yet.")
}
