import ArgumentParser

struct RecvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recv", abstract: "Not built yet.")
}
