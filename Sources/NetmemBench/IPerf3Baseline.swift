import Foundation
import Glibc

/// iperf3 over loopback as a second baseline for `netmem bench rx`: `iperf3 -s -1` and
/// `iperf3 -c 127.0.0.1 -t SECONDS -J` started as child processes, one TCP stream, the
/// receiver's figure read from the client's JSON (`end.sum_received`).
package enum IPerf3Baseline {
    /// Why iperf3 cannot run here (not installed), or nil.
    package static var unavailableReason: String? {
        executable == nil ? "iperf3 is not installed (apt-get install iperf3)" : nil
    }

    private static var executable: String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/iperf3") {
            return "\(dir)/iperf3"
        }
        return nil
    }

    /// Runs one iperf3 test of `seconds` on a free loopback port and returns what the
    /// receiver got, in Gbit/s.
    ///
    /// - Throws: `LoopbackBench.BenchError` when iperf3 is missing, does not start, or its
    ///   output has no receiver figure.
    package static func measure(seconds: Double) throws(LoopbackBench.BenchError) -> Double {
        guard let iperf3 = executable else { throw LoopbackBench.BenchError(unavailableReason!) }
        let port = 20_000 + Int(getpid() % 20_000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: iperf3)
        server.arguments = ["-s", "-1", "-B", "127.0.0.1", "-p", String(port)]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        do { try server.run() } catch { throw LoopbackBench.BenchError("starting iperf3 -s: \(error)") }
        defer {
            if server.isRunning { server.terminate() }
            server.waitUntilExit()
        }
        // The client retries until the server listens (bounded: 50 tries, 100 ms apart).
        var lastOutput = ""
        for _ in 0..<50 {
            let client = Process()
            client.executableURL = URL(fileURLWithPath: iperf3)
            client.arguments = ["-c", "127.0.0.1", "-p", String(port), "-t", String(Int(max(1, seconds.rounded()))), "-J"]
            let pipe = Pipe()
            client.standardOutput = pipe
            client.standardError = FileHandle.nullDevice
            do { try client.run() } catch { throw LoopbackBench.BenchError("starting iperf3 -c: \(error)") }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            client.waitUntilExit()
            if let gbps = receiverGbps(data) { return gbps }
            lastOutput = String(decoding: data.prefix(300), as: UTF8.self)
            usleep(100_000)
        }
        throw LoopbackBench.BenchError("iperf3 gave no receiver figure: \(lastOutput)")
    }

    /// `end.sum_received.bits_per_second` of iperf3's JSON, in Gbit/s.
    static func receiverGbps(_ json: Data) -> Double? {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
              let end = object["end"] as? [String: Any],
              let received = end["sum_received"] as? [String: Any],
              let bits = received["bits_per_second"] as? Double, bits > 0 else { return nil }
        return bits / 1e9
    }
}
