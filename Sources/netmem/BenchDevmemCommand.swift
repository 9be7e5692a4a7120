import ArgumentParser

struct BenchDevmemCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "devmem", abstract: "Not built yet.")
}
