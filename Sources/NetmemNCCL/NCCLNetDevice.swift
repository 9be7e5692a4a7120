import Glibc

/// The network device the plugin reports to NCCL: one interface and the address comms
/// listen on. Chosen once per process (NCCL asks for properties many times).
public struct NCCLNetDevice: Sendable, Equatable {
    public let interface: String
    public let address: NCCLAddress
    /// Port speed in Mbit/s (`/sys/class/net/IF/speed`; 10000 when unknown).
    public let speedMbps: Int
    /// The PCI device's path under /sys, nil for virtual interfaces.
    public let pciPath: String?

    /// Picks the interface: the first that matches `selector` (see
    /// `NCCLConfiguration.interface`), or the first up, non-loopback one with an address,
    /// or loopback.
    public static func choose(selector: String?) throws(NCCLError) -> NCCLNetDevice {
        let all = interfaces()
        let pick: (name: String, address: NCCLAddress, loopback: Bool)?
        if let selector {
            let rules = NCCLInterfaceSelector(selector)
            pick = all.first { rules.matches($0.name) }
            guard pick != nil else {
                let names = Set(all.map(\.name)).sorted().joined(separator: ", ")
                throw NCCLError(.invalidArgument, "no interface with an address matches '\(selector)' (interfaces: \(names))")
            }
        } else {
            pick = all.first { !$0.loopback } ?? all.first { $0.loopback }
        }
        guard let pick else {
            return NCCLNetDevice(interface: "lo", address: .loopback, speedMbps: 10000, pciPath: nil)
        }
        return NCCLNetDevice(interface: pick.name, address: pick.address,
                             speedMbps: speed(of: pick.name), pciPath: pciPath(of: pick.name))
    }

    /// Up interfaces with an IPv4 or IPv6 (not link-local) address, IPv4 first.
    static func interfaces() -> [(name: String, address: NCCLAddress, loopback: Bool)] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0 else { return [] }
        defer { freeifaddrs(head) }
        var v4: [(String, NCCLAddress, Bool)] = []
        var v6: [(String, NCCLAddress, Bool)] = []
        var p = head
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            let flags = Int32(bitPattern: ifa.pointee.ifa_flags)
            guard flags & Int32(IFF_UP) != 0, let sa = ifa.pointee.ifa_addr else { continue }
            let name = String(cString: ifa.pointee.ifa_name)
            let loop = flags & Int32(IFF_LOOPBACK) != 0
            switch Int32(sa.pointee.sa_family) {
            case AF_INET:
                let a = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in.self)
                v4.append((name, NCCLAddress(family: AF_INET, bytes: withUnsafeBytes(of: a.sin_addr) { Array($0) }, port: 0), loop))
            case AF_INET6:
                let a = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: a.sin6_addr) { Array($0) }
                if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { continue }  // link-local needs a scope id
                v6.append((name, NCCLAddress(family: AF_INET6, bytes: bytes, port: 0), loop))
            default:
                continue
            }
        }
        return (v4 + v6).map { (name: $0.0, address: $0.1, loopback: $0.2) }
    }

    static func speed(of interface: String) -> Int {
        guard let text = readSmallFile("/sys/class/net/\(interface)/speed"),
              let v = Int(text.trimmingSpaces), v > 0 else { return 10000 }
        return v
    }

    static func pciPath(of interface: String) -> String? {
        guard let p = realpath("/sys/class/net/\(interface)/device", nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return nil }
        return String(decoding: buf[..<n], as: UTF8.self)
    }
}

private extension String {
    var trimmingSpaces: String {
        String(self.drop { $0 == " " || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\n" }.reversed())
    }
}
