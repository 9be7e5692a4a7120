import Glibc
import Netmem

/// Deterministic data for tests: every run with the same seed sends the same bytes.
public enum TestData {
    /// `count` pseudo-random bytes from `seed`.
    public static func bytes(count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(count)
    }

    /// Message sizes from 1 byte to 4 MiB: the edges, then log-uniform random ones.
    public static func messageSizes(seed: UInt64, count: Int) -> [Int] {
        var sizes = [1, 4 << 20, 2, 4095, 65536, 65537]
        var rng = SplitMix64(seed: seed)
        while sizes.count < count {
            let r = rng.next()
            let bits = Int(r % 23)  // 0...22
            let base = 1 << bits
            sizes.append(min(4 << 20, base + Int((r >> 8) % UInt64(base))))
        }
        return Array(sizes.prefix(count))
    }
}

/// A thread for tests (a joinable POSIX thread).
public final class TestThread: Sendable {
    private let thread: JoinableThread
    public init(_ body: @escaping @Sendable () -> Void) { thread = JoinableThread(body) }
    public func join() { thread.join() }
}

/// Open file descriptors and threads of this process, for "nothing leaked" checks.
public enum ProcessResources {
    /// Entries in /proc/self/fd.
    public static var openDescriptors: Int { count("/proc/self/fd") - 1 }  // less the listing's own
    /// Entries in /proc/self/task.
    public static var threads: Int { count("/proc/self/task") }

    static func count(_ path: String) -> Int {
        guard let dir = opendir(path) else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { n += 1 }
        }
        return n
    }
}
