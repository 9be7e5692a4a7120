import Glibc

/// An IPv4 or IPv6 address and a port, as the connection handle carries them.
public struct NCCLAddress: Sendable, Hashable, CustomStringConvertible {
    /// AF_INET or AF_INET6.
    public let family: Int32
    /// 4 or 16 address bytes (network order).
    public let bytes: [UInt8]
    public var port: UInt16

    public init(family: Int32, bytes: [UInt8], port: UInt16) {
        precondition((family == AF_INET && bytes.count == 4) || (family == AF_INET6 && bytes.count == 16),
                     "an address has 4 (IPv4) or 16 (IPv6) bytes, got \(bytes.count) for family \(family)")
        self.family = family
        self.bytes = bytes
        self.port = port
    }

    public static let loopback = NCCLAddress(family: AF_INET, bytes: [127, 0, 0, 1], port: 0)

    init(storage: sockaddr_storage) {
        var s = storage
        if Int32(s.ss_family) == AF_INET6 {
            let a = withUnsafeBytes(of: &s) { $0.loadUnaligned(as: sockaddr_in6.self) }
            self.init(family: AF_INET6, bytes: withUnsafeBytes(of: a.sin6_addr) { Array($0) }, port: UInt16(bigEndian: a.sin6_port))
        } else {
            let a = withUnsafeBytes(of: &s) { $0.loadUnaligned(as: sockaddr_in.self) }
            self.init(family: AF_INET, bytes: withUnsafeBytes(of: a.sin_addr) { Array($0) }, port: UInt16(bigEndian: a.sin_port))
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var storage = sockaddr_storage()
        let length: socklen_t
        if family == AF_INET6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &a.sin6_addr) { $0.copyBytes(from: bytes) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &a.sin_addr) { $0.copyBytes(from: bytes) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    public var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
