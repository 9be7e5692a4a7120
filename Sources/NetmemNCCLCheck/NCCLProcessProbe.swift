import CNetmemLinux
import Glibc

/// What a process holds that a plugin must give back: its open file descriptors and its
/// threads (the entries of /proc/self/fd and /proc/self/task). A plugin gave everything
/// back when nothing is open or running that was not there before it started; threads
/// the language runtime retires meanwhile may make the later count smaller.
public struct NCCLProcessProbe: Sendable, Equatable, CustomStringConvertible {
    public var fds: Set<Int>
    public var threads: Set<Int>

    public static func now() -> NCCLProcessProbe {
        NCCLProcessProbe(fds: entries("/proc/self/fd"), threads: entries("/proc/self/task"))
    }

    /// Numeric entries of a /proc directory (for /proc/self/fd, without opendir's own).
    static func entries(_ path: String) -> Set<Int> {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var out = Set<Int>()
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let n = Int(name) { out.insert(n) }
        }
        if path.hasSuffix("/fd") { out.remove(Int(dirfd(dir))) }
        return out
    }

    /// Whether everything open or running now was there in `baseline`.
    public func isWithin(_ baseline: NCCLProcessProbe) -> Bool {
        fds.isSubset(of: baseline.fds) && threads.isSubset(of: baseline.threads)
    }

    /// What is here and was not in `baseline`.
    public func extra(over baseline: NCCLProcessProbe) -> String {
        var parts: [String] = []
        let f = fds.subtracting(baseline.fds).sorted()
        let t = threads.subtracting(baseline.threads).sorted()
        if !f.isEmpty { parts.append("new fds \(f.map { "\($0) (\(fdTarget($0)))" }.joined(separator: ", "))") }
        if !t.isEmpty { parts.append("new threads \(t.map { "\($0) (\(threadName($0)))" }.joined(separator: ", "))") }
        return parts.joined(separator: "; ")
    }

    func fdTarget(_ fd: Int) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    func threadName(_ tid: Int) -> String {
        let fd = open("/proc/self/task/\(tid)/comm", O_RDONLY)
        guard fd >= 0 else { return "?" }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &buf, buf.count)
        return n > 0 ? String(decoding: buf[..<n].filter { $0 != 0x0A }, as: UTF8.self) : "?"
    }

    /// Waits (at most `seconds`) until nothing is left over `baseline`; returns the last
    /// probe.
    static func settle(to baseline: NCCLProcessProbe, seconds: Double = 3) -> NCCLProcessProbe {
        let deadline = cnm_now_ns() + UInt64(seconds * 1e9)
        var p = now()
        while !p.isWithin(baseline) && cnm_now_ns() < deadline {
            usleep(20_000)
            p = now()
        }
        return p
    }

    /// CPU seconds (user + system) this process used so far.
    public static var cpuSeconds: Double { Double(cnm_process_cpu_ns()) / 1e9 }

    public var description: String { "\(fds.count) fds, \(threads.count) threads" }
}

/// Seconds on the monotonic clock.
@inline(__always)
func monotonicSeconds() -> Double { Double(cnm_now_ns()) / 1e9 }
