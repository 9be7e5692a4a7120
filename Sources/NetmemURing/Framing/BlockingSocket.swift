import Glibc
import SystemPackage

/// An IPv4 or IPv6 address and port, parsed from "ADDR:PORT" ("127.0.0.1:9000",
/// "[::1]:9000", "localhost:9000", ":9000" for every IPv4 address).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public let host: String
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

/// Plain blocking TCP socket calls (named apart from the io_uring paths' `TCPSocket`), for senders, listeners, the metrics responder and the baseline receiver.
/// Each converts errno to `Errno` once and retries EINTR.
public enum BlockingSocket {
    /// Runs a call that returns -1 with errno set, retrying EINTR.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = Errno(rawValue: errno)
            if e != .interrupted { throw e }
        }
    }

    /// A listening TCP socket (SO_REUSEADDR). Mirrors `socket(2)` + `bind(2)` + `listen(2)`.
    public static func listen(on address: SocketAddress, backlog: Int32 = 128) throws(Errno) -> FileDescriptor {
        let fd = try retrying { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do throws(Errno) {
            var one: Int32 = 1
            _ = try retrying { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
            var storage = address.sockaddrStorage()
            _ = try retrying {
                withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, address.length) }
                }
            }
            _ = try retrying { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return FileDescriptor(rawValue: fd)
    }

    /// A connected TCP socket (TCP_NODELAY off). Mirrors `socket(2)` + `connect(2)`.
    public static func connect(to address: SocketAddress) throws(Errno) -> FileDescriptor {
        let fd = try retrying { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var storage = address.sockaddrStorage()
        let r = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if r < 0 {
            let e = Errno(rawValue: errno)
            Glibc.close(fd)
            throw e
        }
        return FileDescriptor(rawValue: fd)
    }

    /// Mirrors `accept(2)` (the socket is made close-on-exec).
    public static func accept(_ listener: FileDescriptor) throws(Errno) -> FileDescriptor {
        let fd = try retrying { Glibc.accept(listener.rawValue, nil, nil) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(rawValue: fd)
    }

    /// The address a socket is bound to (to learn the port the kernel picked for port 0).
    /// Mirrors `getsockname(2)`.
    public static func localAddress(of socket: FileDescriptor) throws(Errno) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try retrying {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.rawValue, $0, &length) }
            }
        }
        return SocketAddress(storage: storage)
    }

    /// Sends all of `bytes`. Mirrors `send(2)` in a loop.
    public static func sendAll(_ socket: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let n = try retrying { send(socket.rawValue, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            done += n
        }
    }

    /// Sends all of `first` then all of `second` with as few calls as possible. Mirrors
    /// `sendmsg(2)` with two iovecs, in a loop.
    public static func sendAll(_ socket: FileDescriptor, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(Errno) {
        var sent = 0
        let total = first.count + second.count
        while sent < total {
            var iov = (iovec(), iovec())
            var count: Int = 0
            if sent < first.count {
                iov.0 = iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress! + sent), iov_len: first.count - sent)
                iov.1 = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count)
                count = second.count > 0 ? 2 : 1
            } else {
                let off = sent - first.count
                iov.0 = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress! + off), iov_len: second.count - off)
                count = 1
            }
            let n = try retrying {
                withUnsafeMutablePointer(to: &iov) {
                    $0.withMemoryRebound(to: iovec.self, capacity: 2) { p -> Int in
                        var msg = msghdr()
                        msg.msg_iov = p
                        msg.msg_iovlen = count
                        return sendmsg(socket.rawValue, &msg, Int32(MSG_NOSIGNAL))
                    }
                }
            }
            sent += n
        }
    }

    /// Receives up to `buffer.count` bytes; 0 means the peer closed. Mirrors `recv(2)`.
    public static func receive(_ socket: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { recv(socket.rawValue, buffer.baseAddress, buffer.count, 0) }
    }

    /// Closes the sending side (the peer sees end of stream). Mirrors `shutdown(SHUT_WR)`.
    public static func shutdownWrite(_ socket: FileDescriptor) throws(Errno) {
        _ = try retrying { shutdown(socket.rawValue, Int32(SHUT_WR)) }
    }

    /// Closes with a reset instead of a FIN (SO_LINGER with a zero timeout), as a peer
    /// that aborts does.
    public static func closeWithReset(_ socket: FileDescriptor) {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(socket.rawValue)
    }
}
