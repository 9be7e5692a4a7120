import ArgumentParser

struct XDPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "xdp", abstract: "Not built yet.")
}
