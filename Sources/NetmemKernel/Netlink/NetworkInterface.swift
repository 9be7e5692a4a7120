import Glibc
import NetmemNamespace

/// Interface names and indexes in the caller's network namespace.
public enum NetworkInterface {
    /// Mirrors `if_indextoname(3)`; nil when no such interface exists here.
    public static func name(ifindex: UInt32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(ifindex, &buf) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The name of `ifindex` inside the network namespace at `namespacePath` (the
    /// calling thread enters it for the lookup and comes back); nil when there is no such
    /// interface or namespace.
    public static func name(ifindex: UInt32, namespacePath: String) -> String? {
        (try? NetworkNamespace.run(path: namespacePath, returning: { name(ifindex: ifindex) }))
    }

    /// The kernel driver bound to the interface (the last part of the sysfs
    /// `device/driver` link, e.g. `mlx5_core`); nil for a virtual device.
    public static func driver(name: String, sysfsRoot: String = "/sys/class/net") -> String? {
        var buf = [CChar](repeating: 0, count: 512)
        let n = readlink("\(sysfsRoot)/\(name)/device/driver", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.split(separator: "/").last.map(String.init)
    }

    /// Mirrors `if_nametoindex(3)`; nil when no such interface exists here.
    public static func index(name: String) -> UInt32? {
        let i = if_nametoindex(name)
        return i == 0 ? nil : i
    }

    /// Counts `rx-*` and `tx-*` entries under `/sys/class/net/NAME/queues` (the sysfs
    /// view of the real queue counts), or nil when the directory cannot be read.
    public static func sysfsQueueCounts(name: String, sysfsRoot: String = "/sys/class/net") -> (rx: Int, tx: Int)? {
        guard let dir = opendir("\(sysfsRoot)/\(name)/queues") else { return nil }
        defer { closedir(dir) }
        var rx = 0
        var tx = 0
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if entryName.hasPrefix("rx-") { rx += 1 }
            if entryName.hasPrefix("tx-") { tx += 1 }
        }
        return (rx, tx)
    }
}
