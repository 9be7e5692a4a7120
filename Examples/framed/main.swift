// Receives Netmem frames; a consumer task reads each payload where it landed and lets
// the frame go, which gives its tokens back.
//   swift run -c release example-framed --listen 127.0.0.1:9000
import ArgumentParser
import NetmemSession
import NetmemURing

@main
struct ExampleFramed: AsyncParsableCommand {
    @Option(help: "Address to listen on, ADDR:PORT.") var listen: String
    @Option(help: "Stop after this many connections (default: never).") var connections: Int?

    func run() async throws {
        let configuration = ReceiveSession.Configuration(listen: try SocketAddress(parsing: listen), memory: .memfdRegion,
                                                         mode: .framed(maxPayload: 1 << 20))
        let session = try ReceiveSession(configuration)
        try session.start()
        print("listening on \(session.localAddress!)")
        var accepted = 0
        for try await connection in session.connections {
            var frames = 0, bytes = 0, zeros = 0
            do {
                for try await frame in connection.frames {
                    try frame.withUnsafePayload { for b in $0 { zeros += b.count { $0 == 0 } } }
                    frames += 1
                    bytes += frame.payloadLength
                }  // each frame goes away here: its tokens go back
                print("\(connection): \(frames) frames, \(bytes) payload bytes, \(zeros) zero bytes")
            } catch {
                print("\(connection) failed after \(frames) frames: \(error)")
            }
            accepted += 1
            if accepted == connections { break }
        }
        session.stop()
        try await session.wait()
    }
}
