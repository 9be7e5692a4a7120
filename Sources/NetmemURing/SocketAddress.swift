import Glibc
import SystemPackage

/// An IPv4 or IPv6 address and port, parsed from "ADDR:PORT" ("127.0.0.1:9000",
/// "[::1]:9000", "localhost:9000", ":9000" for every IPv4 address).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as text, without brackets: as parsed (an empty host is "0.0.0.0",
    /// "localhost" is "127.0.0.1"), or as `inet_ntop` writes an address the kernel reported.
    public let host: String
    /// The port, in host byte order.
    public let port: UInt16
    let family: Int32
    /// The address bytes (4 or 16).
    let addressBytes: [UInt8]

    /// Parses "ADDR:PORT". Throws `SocketAddressError` naming what was wrong.
    public init(parsing text: String) throws(SocketAddressError) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .malformed(text) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .malformed(text) }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .malformed(text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { throw .badPort(String(portText)) }
        if host.isEmpty { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }
        // inet_pton reads a C string: a NUL would end the address early and the rest of
        // the text would be ignored ("[::ff\0junk]:443" taken as ::ff).
        guard !host.utf8.contains(0) else { throw .badHost(String(host)) }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, String(host), &v4) == 1 {
            family = AF_INET
            addressBytes = withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, String(host), &v6) == 1 {
            family = AF_INET6
            addressBytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            throw .badHost(String(host))
        }
        self.host = String(host)
        self.port = port
    }

    init(storage: sockaddr_storage) {
        var s = storage
        if Int32(s.ss_family) == AF_INET6 {
            let a = withUnsafeBytes(of: &s) { $0.loadUnaligned(as: sockaddr_in6.self) }
            family = AF_INET6
            port = UInt16(bigEndian: a.sin6_port)
            addressBytes = withUnsafeBytes(of: a.sin6_addr) { Array($0) }
        } else {
            let a = withUnsafeBytes(of: &s) { $0.loadUnaligned(as: sockaddr_in.self) }
            family = AF_INET
            port = UInt16(bigEndian: a.sin_port)
            addressBytes = withUnsafeBytes(of: a.sin_addr) { Array($0) }
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = self.family
        _ = self.addressBytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The same host with another port.
    public func with(port: UInt16) -> SocketAddress {
        var storage = sockaddrStorage()
        // sin_port and sin6_port both sit at byte offset 2.
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: port.bigEndian, toByteOffset: 2, as: UInt16.self) }
        return SocketAddress(storage: storage)
    }

    func sockaddrStorage() -> sockaddr_storage {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            if family == AF_INET6 {
                var a = sockaddr_in6()
                a.sin6_family = sa_family_t(AF_INET6)
                a.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &a.sin6_addr) { $0.copyBytes(from: addressBytes) }
                raw.storeBytes(of: a, as: sockaddr_in6.self)
            } else {
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = port.bigEndian
                withUnsafeMutableBytes(of: &a.sin_addr) { $0.copyBytes(from: addressBytes) }
                raw.storeBytes(of: a, as: sockaddr_in.self)
            }
        }
        return storage
    }

    var length: socklen_t {
        socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why an "ADDR:PORT" text was not an address.
public enum SocketAddressError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case badPort(String)
    case badHost(String)

    public var description: String {
        switch self {
        case let .malformed(t): return "'\(t)' is not ADDR:PORT (e.g. 127.0.0.1:9000 or [::1]:9000)"
        case let .badPort(t): return "'\(t)' is not a port number (0–65535)"
        case let .badHost(t): return "'\(t)' is not a numeric IPv4/IPv6 address or 'localhost'"
        }
    }
}
