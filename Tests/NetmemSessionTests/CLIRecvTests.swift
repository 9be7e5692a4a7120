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
    static let path: String? = executable("netmem")

    /// An executable of this package next to the test bundle, if it was built.
    static func executable(_ name: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        var dir = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // .../debug/netmemPackageTests.xctest (a file, or a bundle directory)
        while let slash = dir.lastIndex(of: "/") {
            dir = String(dir[..<slash])
            let candidate = dir + "/" + name
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
            if dir.hasSuffix("/debug") || dir.hasSuffix("/release") || dir.isEmpty { break }
        }
        print("SKIP: the \(name) executable was not found next to the test bundle (build it with `swift build`)")
        return nil
    }

    static var available: Bool { path != nil && SessionTest.available }

    /// A spawned `netmem` whose standard error the test reads.
    final class Process {
        let pid: pid_t
        let stderrRead: Int32
        var stderrText = ""

        convenience init(_ arguments: [String]) throws { try self.init(executable: NetmemBinary.path!, arguments) }

        init(executable: String, _ arguments: [String], stdoutToPipe: Bool = false) throws {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
            if stdoutToPipe {
                posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            } else {
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            }
            posix_spawn_file_actions_addclose(&actions, fds[0])
            let argv = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            var child: pid_t = 0
            let r = posix_spawn(&child, executable, &actions, nil, argv, environ)
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
                if let range = stderrText.firstRange(of: pattern) {
                    let rest = stderrText[range.upperBound...]
                    if let end = rest.firstIndex(of: "\n") { return String(rest[..<end]) }
                }
                let n = read(stderrRead, &buf, buf.count)
                if n > 0 { stderrText += String(decoding: buf[..<n], as: UTF8.self) } else { usleep(10_000) }
            }
            return nil
        }

        /// Waits (at most `seconds`) for the process to exit; its exit status.
        func waitForExit(seconds: Double = 30) -> Int32? {
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            var buf = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                let n = read(stderrRead, &buf, buf.count)
                if n > 0 { stderrText += String(decoding: buf[..<n], as: UTF8.self); continue }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    while true {
                        let m = read(stderrRead, &buf, buf.count)
                        if m <= 0 { break }
                        stderrText += String(decoding: buf[..<m], as: UTF8.self)
                    }
                    return (status >> 8) & 0xFF
                }
                usleep(10_000)
            }
            return nil
        }

        /// Sends SIGINT and waits (at most 20 s) for the exit status.
        func interruptAndWait() -> Int32? {
            kill(pid, SIGINT)
            let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
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
func port(in text: String) -> UInt16? {
    guard let r = text.firstRange(of: "127.0.0.1:") else { return nil }
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
        let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
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

import NetmemSHA256

private func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { b in
        let s = String(b, radix: 16)
        return b < 16 ? "0" + s : s
    }.joined()
}

/// Which helper programs the machine has (tests that need one are skipped, with the reason).
enum Tools {
    static func has(_ name: String) -> Bool {
        for dir in (String(cString: getenv("PATH") ?? strdup("/usr/bin:/bin")!)).split(separator: ":") {
            if access("\(dir)/\(name)", X_OK) == 0 { return true }
        }
        print("SKIP: \(name) is not installed")
        return false
    }
    static let socat = has("socat")
    static let python3 = has("python3")
}

/// A file of `count` seeded bytes in /tmp, removed when the value goes.
final class TempFile {
    let path: String
    let bytes: [UInt8]
    init(count: Int, seed: UInt64) throws {
        bytes = TestData.bytes(count: count, seed: seed)
        path = "/tmp/netmem-test-\(getpid())-\(seed)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { raw in
            var at = 0
            while at < raw.count {
                let n = write(fd, raw.baseAddress! + at, raw.count - at)
                guard n > 0 else { throw Errno(rawValue: errno) }
                at += n
            }
        }
    }
    deinit { unlink(path) }
}

/// Runs `program arguments` to completion (bounded); its exit status.
func runToEnd(_ program: String, _ arguments: [String], seconds: Double = 60) throws -> Int32? {
    let p = try NetmemBinary.Process(executable: program, arguments)
    return p.waitForExit(seconds: seconds)
}

@Suite("netmem recv and example-receive against independent senders (spawned binaries)", .serialized)
struct CLIDigestTests {
    /// A sender of the frame format written from DESIGN.md alone, in Python, with its
    /// own CRC-32C: frames of random sizes, CRC on every other one; prints the SHA-256 of
    /// the payloads it sent.
    static let pythonSender = """
    import hashlib, os, random, socket, struct, sys
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    def crc32c(data):
        c = 0xFFFFFFFF
        for b in data:
            c = table[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF
    host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(7)
    s = socket.create_connection((host, port))
    sha = hashlib.sha256()
    seq, sent = 0, 0
    while sent < total:
        n = min(total - sent, rng.choice([1, 100, 4096, 65536, 300000, rng.randrange(1, 1 << 20)]))
        payload = os.urandom(n)
        with_crc = seq % 2 == 0
        crc = crc32c(payload) if with_crc else 0
        header = struct.pack('<IBBHIIQII', 0x4D454D4E, 1, 1 if with_crc else 0, 32, 5, n, seq, crc, 0)
        s.sendall(header + payload)
        sha.update(payload)
        seq += 1
        sent += n
    s.close()
    print(sha.hexdigest())
    """

    @Test("recv --framed --provider memfd --segments 4 --sha256 prints the independent sender's digest",
          .enabled(if: NetmemBinary.available && Tools.python3, "needs the built netmem binary, python3 and io_uring"))
    func framedPythonSender() throws {
        let recv = try NetmemBinary.Process(["recv", "--listen", "127.0.0.1:0", "--framed", "--provider", "memfd",
                                             "--segments", "4", "--sha256", "--connections", "1", "--max-payload", "1M"])
        let dataPort = try #require(recv.waitForLine(containing: "listening on ").flatMap { port(in: $0) }, "\(recv.stderrText)")
        let script = "/tmp/netmem-sender-\(getpid()).py"
        let fd = open(script, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        _ = Self.pythonSender.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        defer { unlink(script) }
        let sender = try NetmemBinary.Process(executable: "/usr/bin/env", ["python3", script, "127.0.0.1", "\(dataPort)", "\(3 << 20)"],
                                              stdoutToPipe: true)
        #expect(sender.waitForExit(seconds: 120) == 0, "sender: \(sender.stderrText)")
        let sent = sender.stderrText.split(separator: "\n").last.map(String.init) ?? ""
        #expect(sent.count == 64, "sender printed: \(sender.stderrText)")
        #expect(recv.waitForExit(seconds: 60) == 0, "\(recv.stderrText)")
        #expect(recv.stderrText.contains("sha256 \(sent)"), "recv said: \(recv.stderrText)")
        #expect(!recv.stderrText.contains("failed"), "recv said: \(recv.stderrText)")
    }

    @Test("recv (raw) --provider memfd --segments 8 --sha256 fed by socat prints sha256sum's digest",
          .enabled(if: NetmemBinary.available && Tools.socat, "needs the built netmem binary, socat and io_uring"))
    func rawSocat() throws {
        let file = try TempFile(count: 6_000_000 + 333, seed: 8)
        let recv = try NetmemBinary.Process(["recv", "--listen", "127.0.0.1:0", "--provider", "memfd", "--segments", "8",
                                             "--sha256", "--connections", "1"])
        let dataPort = try #require(recv.waitForLine(containing: "listening on ").flatMap { port(in: $0) }, "\(recv.stderrText)")
        #expect(try runToEnd("/usr/bin/env", ["socat", "-u", "FILE:\(file.path)", "TCP:127.0.0.1:\(dataPort)"]) == 0)
        #expect(recv.waitForExit(seconds: 60) == 0, "\(recv.stderrText)")
        #expect(recv.stderrText.contains("sha256 \(SessionTest.sha256(file.bytes))"), "recv said: \(recv.stderrText)")
    }

    @Test("example-receive --segments 3 fed by socat prints the file's digest",
          .enabled(if: NetmemBinary.executable("example-receive") != nil && Tools.socat && SessionTest.available,
                   "needs the built example-receive, socat and io_uring"))
    func exampleReceive() throws {
        let file = try TempFile(count: 5_000_000 + 77, seed: 9)
        // The example prints to standard output, which a pipe buffers until it exits:
        // give it a port found free just before.
        let (probe, dataPort) = try Loopback.listener()
        try probe.close()
        let example = try NetmemBinary.Process(executable: NetmemBinary.executable("example-receive")!,
                                               ["--listen", "127.0.0.1:\(dataPort)", "--segments", "3", "--connections", "2"],
                                               stdoutToPipe: true)
        // Connect once it listens (bounded); that empty probe is its first connection.
        let deadline = ContinuousClock.now + .seconds(120)  // a bound, not a timing claim
        var probed = false
        while !probed && ContinuousClock.now < deadline {
            if let c = try? Loopback.connect(port: dataPort) { try c.close(); probed = true } else { usleep(20_000) }
        }
        #expect(probed, "example-receive never listened: \(example.stderrText)")
        #expect(try runToEnd("/usr/bin/env", ["socat", "-u", "FILE:\(file.path)", "TCP:127.0.0.1:\(dataPort)"]) == 0)
        #expect(example.waitForExit(seconds: 60) == 0, "\(example.stderrText)")
        #expect(example.stderrText.contains("sha256 \(SessionTest.sha256(file.bytes))"), "example said: \(example.stderrText)")
    }
}
