import CNetmemLinux
import Glibc
import Netmem
import SystemPackage

/// Plain blocking TCP socket calls (named apart from the io_uring paths' `TCPSocket`), for senders, listeners, the metrics responder and the baseline receiver.
/// Each converts errno to `Errno` once and retries EINTR.
package enum BlockingSocket {
    /// The system's largest accept backlog (`net.core.somaxconn`), 4096 when unreadable.
    package static var maximumBacklog: Int32 {
        let fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 4096 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 4096 }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).filter { $0.isNumber }
        return Int32(text).flatMap { $0 > 0 ? $0 : nil } ?? 4096
    }

    /// A listening TCP socket (SO_REUSEADDR). Mirrors `socket(2)` + `bind(2)` + `listen(2)`.
    /// `backlog` nil takes the system maximum (`maximumBacklog`), so bursts of connects
    /// never wait for a SYN retransmit.
    package static func listen(on address: SocketAddress, backlog: Int32? = nil) throws(Errno) -> FileDescriptor {
        let backlog = backlog ?? maximumBacklog
        let fd = try retryingSystemCall { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do throws(Errno) {
            var one: Int32 = 1
            _ = try retryingSystemCall { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
            var storage = address.sockaddrStorage()
            _ = try retryingSystemCall {
                withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, address.length) }
                }
            }
            _ = try retryingSystemCall { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return FileDescriptor(rawValue: fd)
    }

    /// A connected TCP socket (TCP_NODELAY off). Mirrors `socket(2)` + `connect(2)`.
    package static func connect(to address: SocketAddress) throws(Errno) -> FileDescriptor {
        let fd = try retryingSystemCall { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
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

    /// Mirrors `accept4(2)` with `SOCK_CLOEXEC` (close-on-exec from the start, so a fork
    /// in another thread never inherits it).
    package static func accept(_ listener: FileDescriptor) throws(Errno) -> FileDescriptor {
        let fd = try retryingSystemCall { cnm_accept_cloexec(listener.rawValue, 0) }
        return FileDescriptor(rawValue: fd)
    }

    /// The address a socket is bound to (to learn the port the kernel picked for port 0).
    /// Mirrors `getsockname(2)`.
    package static func localAddress(of socket: FileDescriptor) throws(Errno) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try retryingSystemCall {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.rawValue, $0, &length) }
            }
        }
        return SocketAddress(storage: storage)
    }

    /// Sends all of `bytes`. Mirrors `send(2)` in a loop.
    package static func sendAll(_ socket: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let n = try retryingSystemCall { send(socket.rawValue, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            done += n
        }
    }

    /// Sends all of `first` then all of `second` with as few calls as possible. Mirrors
    /// `sendmsg(2)` with two iovecs, in a loop.
    package static func sendAll(_ socket: FileDescriptor, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(Errno) {
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
            let n = try retryingSystemCall {
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
    package static func receive(_ socket: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryingSystemCall { recv(socket.rawValue, buffer.baseAddress, buffer.count, 0) }
    }

    /// Closes the sending side (the peer sees end of stream). Mirrors `shutdown(SHUT_WR)`.
    package static func shutdownWrite(_ socket: FileDescriptor) throws(Errno) {
        _ = try retryingSystemCall { shutdown(socket.rawValue, Int32(SHUT_WR)) }
    }

    /// Closes with a reset instead of a FIN (SO_LINGER with a zero timeout), as a peer
    /// that aborts does.
    package static func closeWithReset(_ socket: FileDescriptor) {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(socket.rawValue)
    }
}
