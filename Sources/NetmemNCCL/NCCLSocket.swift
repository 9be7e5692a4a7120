import CNetmemLinux
import Glibc
import Netmem
import SystemPackage

/// The socket calls of the plugin's connection setup and control traffic. Each converts
/// errno to `Errno` once and retries EINTR; "would block" is a return value, not an error.
enum NCCLSocket {
    /// A non-blocking, close-on-exec TCP socket. Mirrors `socket(2)`.
    static func stream(family: Int32) throws(Errno) -> FileDescriptor {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        return FileDescriptor(rawValue: try retryingSystemCall { socket(family, type, 0) })
    }

    /// A non-blocking listening socket on `address` (port 0: the kernel picks one); returns
    /// it with the address it is bound to. Mirrors `bind(2)` + `listen(2)` + `getsockname(2)`.
    static func listen(on address: NCCLAddress, backlog: Int32 = 256) throws(Errno) -> (FileDescriptor, NCCLAddress) {
        let fd = try stream(family: address.family)
        do throws(Errno) {
            var one: Int32 = 1
            _ = try retryingSystemCall { setsockopt(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
            _ = try retryingSystemCall { address.withSockaddr { Glibc.bind(fd.rawValue, $0, $1) } }
            _ = try retryingSystemCall { Glibc.listen(fd.rawValue, backlog) }
            return (fd, try localAddress(of: fd))
        } catch {
            _ = try? fd.close()
            throw error
        }
    }

    /// Mirrors `getsockname(2)`.
    static func localAddress(of fd: FileDescriptor) throws(Errno) -> NCCLAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try retryingSystemCall {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &length) }
            }
        }
        return NCCLAddress(storage: storage)
    }

    /// Starts a non-blocking connect; true when it completed at once. Mirrors `connect(2)`
    /// (EINPROGRESS is the usual answer).
    static func startConnect(_ fd: FileDescriptor, to address: NCCLAddress) throws(Errno) -> Bool {
        let r = address.withSockaddr { Glibc.connect(fd.rawValue, $0, $1) }
        if r == 0 { return true }
        let e = Errno(rawValue: errno)
        if e == .nowInProgress || e == .interrupted || e == .alreadyInProcess { return false }
        throw e
    }

    /// Whether a connect started with `startConnect` has finished; throws its error.
    /// Mirrors `poll(POLLOUT, 0)` + `getsockopt(SO_ERROR)`.
    static func connectFinished(_ fd: FileDescriptor) throws(Errno) -> Bool {
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLOUT), revents: 0)
        let n = try retryingSystemCall { poll(&p, 1, 0) }
        if n == 0 { return false }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = try retryingSystemCall { getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &err, &len) }
        if err != 0 { throw Errno(rawValue: err) }
        return true
    }

    /// A connection waiting on `listener`, or nil. Mirrors `accept4(2)` (non-blocking,
    /// close-on-exec).
    static func accept(_ listener: FileDescriptor) throws(Errno) -> FileDescriptor? {
        while true {
            let fd = cnm_accept_cloexec(listener.rawValue, 1)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            let e = Errno(rawValue: errno)
            switch e {
            case .interrupted: continue
            case .resourceTemporarilyUnavailable, .wouldBlock: return nil
            // The connection went away before we took it: look at the next one.
            case .connectionAbort, .protocolError: continue
            default: throw e
            }
        }
    }

    /// Sends what fits now; returns the bytes taken (0 when the socket is full).
    /// Mirrors `send(2)` with MSG_DONTWAIT | MSG_NOSIGNAL.
    static func sendNow(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        guard bytes.count > 0 else { return 0 }
        while true {
            let n = send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            if n >= 0 { return n }
            let e = Errno(rawValue: errno)
            if e == .interrupted { continue }
            if e == .resourceTemporarilyUnavailable || e == .wouldBlock { return 0 }
            throw e
        }
    }

    /// Reads what is there now: nil when nothing is, 0 at end of stream. Mirrors `recv(2)`
    /// with MSG_DONTWAIT.
    static func receiveNow(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        while true {
            let n = recv(fd.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n >= 0 { return n }
            let e = Errno(rawValue: errno)
            if e == .interrupted { continue }
            if e == .resourceTemporarilyUnavailable || e == .wouldBlock { return nil }
            throw e
        }
    }

    /// Makes a socket blocking again (the data paths wait in io_uring). Mirrors
    /// `fcntl(F_SETFL, flags & ~O_NONBLOCK)`.
    static func setBlocking(_ fd: FileDescriptor) throws(Errno) {
        let flags = try retryingSystemCall { fcntl(fd.rawValue, F_GETFL) }
        _ = try retryingSystemCall { fcntl(fd.rawValue, F_SETFL, flags & ~O_NONBLOCK) }
    }

    /// Options of a data socket: TCP_NODELAY, keepalive probes and TCP_USER_TIMEOUT of
    /// about `peerTimeoutSeconds`, and SO_SNDBUF/SO_RCVBUF when given. Mirrors `setsockopt(2)`.
    static func configureData(_ fd: FileDescriptor, peerTimeoutSeconds: Int, buffer: Int?) throws(Errno) {
        func set(_ level: Int32, _ name: Int32, _ value: Int32) throws(Errno) {
            var v = value
            _ = try retryingSystemCall { setsockopt(fd.rawValue, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
        }
        try set(Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        try set(SOL_SOCKET, SO_KEEPALIVE, 1)
        let idle = Int32(max(1, peerTimeoutSeconds / 3))
        try set(Int32(IPPROTO_TCP), TCP_KEEPIDLE, idle)
        try set(Int32(IPPROTO_TCP), TCP_KEEPINTVL, max(1, idle / 3))
        try set(Int32(IPPROTO_TCP), TCP_KEEPCNT, 3)
        try set(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, Int32(peerTimeoutSeconds * 1000))
        if let b = buffer {
            try set(SOL_SOCKET, SO_SNDBUF, Int32(clamping: b))
            try set(SOL_SOCKET, SO_RCVBUF, Int32(clamping: b))
        }
    }

    /// Ends both directions so a thread blocked on the socket returns. Mirrors `shutdown(2)`.
    static func shutdownBoth(_ fd: FileDescriptor) {
        _ = Glibc.shutdown(fd.rawValue, Int32(SHUT_RDWR))
    }

    /// Mirrors `dup(2)` (close-on-exec).
    static func duplicate(_ fd: FileDescriptor) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try retryingSystemCall { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) })
    }
}
