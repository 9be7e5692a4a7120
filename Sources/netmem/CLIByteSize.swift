import ArgumentParser
import NetmemCommandLine

/// A byte count from the command line: "4096", "64K", "1M", "2G", "1.5GiB" (the forms
/// `ByteSize` parses).
struct CLIByteSize: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        guard let size = try? ByteSize(parsing: argument) else { return nil }
        bytes = size.bytes
    }

    var description: String { CLIFormat.bytes(bytes) }
    static var defaultCompletionKind: CompletionKind { .default }
}
