import Netmem
import Glibc
import NetmemURing
import NetmemTestSupport
import SystemPackage
import Testing

/// Drives the built `netmem` binary: `recv --metrics` must serve Prometheus text over
/// HTTP/1.1 on loopback. (The exporter lives in the CLI, which is where swift-prometheus
/// is linked, so it is tested through the binary.)
enum NetmemBinary {
    /// The `netmem` executable next to the test bundle, if it was built.
    static let path: String? = {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        var dir = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // .../debug/netmemPackageTests.xctest (a file, or a bundle directory)
        while let slash = dir.lastIndex(of: "/") {
            dir = String(dir[..<slash])
            let candidate = dir + "/netmem"
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
            if dir.hasSuffix("/debug") || dir.hasSuffix("/release") || dir.isEmpty { break }
        }
        print("SKIP: the netmem executable was not found next to the test bundle (build it with `swift build`)")
        return nil
    }()

    static var available: Bool { path != nil && SessionTest.available }

    /// A spawned `netmem` whose standard error the test reads.
    final class Process {
        let pid: pid_t
        let stderrRead: Int32
        var stderrText = ""

        init(_ arguments: [String]) throws {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addclose(&actions, fds[0])
            let argv = ([NetmemBinary.path!] + arguments).map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            var child: pid_t = 0
            let r = posix_spawn(&child, NetmemBinary.path!, &actions, nil, argv, environ)
            close(fds[1])
            guard r == 0 else { close(fds[0]); throw Errno(rawValue: r) }
            pid = child
            stderrRead = fds[0]
            _ = fcntl(stderrRead, F_SETFL, fcntl(stderrRead, F_GETFL) | O_NONBLOCK)
        }

        deinit {
            if kill(pid, 0) == 0 { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) }
            close(stderrRead)
        }

        /// Reads standard error until `pattern` appears (at most `seconds`); returns the
        /// text that follows the pattern up to the end of its line.
        func waitForLine(containing pattern: String, seconds: Double = 20) -> String? {
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            var buf = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                if let range = stderrText.range(of: pattern) {
                    let rest = stderrText[range.upperBound...]
                    if let end = rest.firstIndex(of: "\n") { return String(rest[..<end]) }
                }
                let n = read(stderrRead, &buf, buf.count)
                if n > 0 { stderrText += String(decoding: buf[..<n], as: UTF8.self) } else { usleep(10_000) }
            }
            return nil
        }

        /// Sends SIGINT and waits (at most 20 s) for the exit status.
        func interruptAndWait() -> Int32? {
            kill(pid, SIGINT)
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { return (status >> 8) & 0xFF }
                usleep(20_000)
            }
            return nil
        }
    }

    /// One HTTP/1.1 GET on loopback; returns the whole response.
    static func get(_ address: SocketAddress, path: String) throws -> String {
        let s = try BlockingSocket.connect(to: address)
        defer { try? s.close() }
        try s.sendAll(Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8))
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < 1 << 20 {
            let n = try buf.withUnsafeMutableBytes { try BlockingSocket.receive(s, into: $0) }
            if n == 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The port in "…127.0.0.1:PORT…".
private func port(in text: String) -> UInt16? {
    guard let r = text.range(of: "127.0.0.1:") else { return nil }
    return UInt16(text[r.upperBound...].prefix { $0.isNumber })
}

@Suite("netmem recv --metrics (spawned binary)", .serialized)
struct FramingMetricsCLITests {
    @Test("recv serves pool, ring and connection counters in Prometheus text over HTTP",
          .enabled(if: NetmemBinary.available, "needs the built netmem binary and io_uring provided-buffer rings"))
    func scrapeMetrics() throws {
        let process = try NetmemBinary.Process(["recv", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--duration", "60", "--sha256"])
        let metricsLine = process.waitForLine(containing: "metrics on http://")
        let listenLine = process.waitForLine(containing: "listening on ")
        let metricsPort = try #require(metricsLine.flatMap { port(in: $0) }, "no metrics address in: \(process.stderrText)")
        let dataPort = try #require(listenLine.flatMap { port(in: $0) }, "no listen address in: \(process.stderrText)")
        let metrics = try SocketAddress(parsing: "127.0.0.1:\(metricsPort)")

        // Send 1 MiB of raw bytes and close.
        var rng = SplitMix64(seed: 77)
        let data = rng.bytes(1 << 20)
        let s = try BlockingSocket.connect(to: SocketAddress(parsing: "127.0.0.1:\(dataPort)"))
        try s.sendAll(data)
        try s.close()

        var body = ""
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            body = try NetmemBinary.get(metrics, path: "/metrics")
            if body.contains("netmem_connections_ended 1") { break }
            usleep(50_000)
        }
        #expect(body.hasPrefix("HTTP/1.1 200 OK"))
        #expect(body.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(body.contains("# TYPE netmem_page_pool_alloc_fast counter"))
        #expect(body.contains("netmem_page_pool_recycle_cached "))
        #expect(body.contains("# TYPE netmem_page_pool_inflight gauge"))
        #expect(body.contains("netmem_rx_payload_bytes 1048576"))
        #expect(body.contains("netmem_connections_ended 1"))
        #expect(body.contains("netmem_ring_enobufs "))
        let missing = try NetmemBinary.get(metrics, path: "/nothing")
        #expect(missing.hasPrefix("HTTP/1.1 404"))

        // The digest recv printed is the SHA-256 of what was sent.
        let digestLine = process.waitForLine(containing: "sha256 ")
        #expect(digestLine?.hasPrefix(sha256Hex(data)) == true, "recv said: \(digestLine ?? "nothing")")

        // Ctrl-C ends it cleanly, with final statistics and nothing in flight.
        let status = process.interruptAndWait()
        #expect(status == 0, "exit status \(status.map { "\($0)" } ?? "none"): \(process.stderrText)")
    }
}

import Crypto

private func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { b in
        let s = String(b, radix: 16)
        return b < 16 ? "0" + s : s
    }.joined()
}
