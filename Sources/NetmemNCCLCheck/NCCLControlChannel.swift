import Glibc
import SystemPackage

/// Lines of text between the harness and its peer process over a socketpair: handles (as
/// hex), step markers and results. Each line is one message; reads wait at most a
/// deadline, so a dead or silent peer becomes an error, never a hang.
final class NCCLControlChannel {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func send(_ line: String) throws(NCCLCheckError) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .peer("control channel write failed: \(Errno(rawValue: errno))")
            }
            off += n
        }
    }

    /// The next line (without its newline), waiting at most `seconds`.
    func receive(seconds: Double) throws(NCCLCheckError) -> String {
        let deadline = monotonicSeconds() + seconds
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeFirst(nl + 1)
                return line
            }
            let left = deadline - monotonicSeconds()
            guard left > 0 else { throw .peer("no word from the other process in \(Int(seconds)) s") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left, 1) * 1000) + 1)
            if r < 0 && errno != EINTR { throw .peer("control channel poll failed: \(Errno(rawValue: errno))") }
            if r <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .peer("control channel read failed: \(Errno(rawValue: errno))")
            }
            if n == 0 { throw .peer("the other process closed the control channel (it exited or crashed)") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    /// Reads what has arrived without waiting; true when a line that starts with `word`
    /// is among it (that line is taken out).
    func lookFor(_ word: String) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 0) > 0 {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { buffer.append(contentsOf: chunk[..<n]) }
        }
        var start = 0
        while let nl = buffer[start...].firstIndex(of: 0x0A) {
            let line = String(decoding: buffer[start..<nl], as: UTF8.self)
            if line == word || line.hasPrefix(word + " ") {
                buffer.removeSubrange(start...nl)
                return true
            }
            start = nl + 1
        }
        return false
    }

    /// Waits for a line starting with `word` and returns the rest of it.
    func expect(_ word: String, seconds: Double) throws(NCCLCheckError) -> String {
        let line = try receive(seconds: seconds)
        guard line == word || line.hasPrefix(word + " ") else {
            throw .peer("expected '\(word)' from the other process, got '\(line.prefix(200))'")
        }
        return String(line.dropFirst(word.count).drop { $0 == " " })
    }
}

enum Hex {
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            default: return nil
            }
        }
        var out = [UInt8]()
        var i = 0
        while i < u.count {
            guard let hi = v(u[i]), let lo = v(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// The other process: this executable again, started with the peer arguments and the
/// control channel as descriptor 3.
final class NCCLPeerProcess {
    let pid: pid_t
    let channel: NCCLControlChannel
    private var reaped = false

    init(arguments: [String]) throws(NCCLCheckError) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw .peer("socketpair failed: \(Errno(rawValue: errno))")
        }
        if fds[1] == 3 {  // dup2(3, 3) would keep close-on-exec: move it first
            let moved = fcntl(3, F_DUPFD_CLOEXEC, 4)
            close(3)
            fds[1] = moved
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 3)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let exe = "/proc/self/exe"
        let argv = ([exe] + arguments + ["--control-fd", "3"]).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let r = posix_spawn(&child, exe, &actions, nil, argv, environ)
        close(fds[1])
        guard r == 0 else {
            close(fds[0])
            throw .peer("posix_spawn of \(exe) failed: \(Errno(rawValue: r))")
        }
        pid = child
        channel = NCCLControlChannel(fd: fds[0])
    }

    /// Mirrors `kill(pid, SIGKILL)`.
    func kill() { _ = Glibc.kill(pid, SIGKILL) }

    /// Waits (at most `seconds`) for the exit; returns the wait status, nil if it did not
    /// exit (it is then killed).
    @discardableResult
    func wait(seconds: Double) -> Int32? {
        guard !reaped else { return 0 }
        let deadline = monotonicSeconds() + seconds
        var status: Int32 = 0
        while monotonicSeconds() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                return status
            }
            usleep(10_000)
        }
        kill()
        waitpid(pid, &status, 0)
        reaped = true
        return nil
    }

    deinit {
        if !reaped {
            kill()
            var s: Int32 = 0
            waitpid(pid, &s, 0)
        }
    }
}
