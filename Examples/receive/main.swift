// Receives raw TCP streams into a memfd region of N scatter-gather segments with the
// async API, and prints each connection's SHA-256 when it ends.
//   swift run -c release example-receive --listen 127.0.0.1:9000 --segments 3
import ArgumentParser
import NetmemSHA256
import NetmemSession
import NetmemURing

@main
struct ExampleReceive: AsyncParsableCommand {
    @Option(help: "Address to listen on, ADDR:PORT.") var listen: String
    @Option(help: "Scatter-gather segments of the region.") var segments = 3
    @Option(help: "Stop after this many connections (default: never).") var connections: Int?

    func run() async throws {
        var configuration = ReceiveSession.Configuration(listen: try SocketAddress(parsing: listen), memory: .memfdRegion)
        configuration.segments = segments
        let session = try ReceiveSession(configuration)
        try session.start()
        print("listening on \(session.localAddress!), region of \(session.region.segments.count) segments")
        try await withThrowingDiscardingTaskGroup { group in
            var accepted = 0
            for try await connection in session.connections {
                group.addTask {
                    var sha = SHA256()
                    for try await frame in connection.frames {
                        try frame.withUnsafePayload { for buffer in $0 { sha.update(bufferPointer: buffer) } }
                    }
                    print("\(connection) sha256 \(sha.finalize().map { String(Int($0) + 0x100, radix: 16).dropFirst() }.joined())")
                }
                accepted += 1
                if accepted == connections { break }
            }
        }
        session.stop()
        try await session.wait()
    }
}
