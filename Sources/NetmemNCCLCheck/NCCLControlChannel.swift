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
