import CNetmemLinux
import Glibc
import SystemPackage

/// Loopback sockets for tests: a listener on 127.0.0.1 with a kernel-chosen port, blocking
/// clients, and a send that writes everything.
public enum Loopback {
    /// A listening socket on 127.0.0.1 with a kernel-chosen port.
    public static func listener(backlog: Int32 = 1024) throws -> (FileDescriptor, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        a.sin_port = 0
        var r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0, listen(fd, backlog) == 0 else { close(fd); throw Errno(rawValue: errno) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        r = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard r == 0 else { close(fd); throw Errno(rawValue: errno) }
        return (FileDescriptor(rawValue: fd), UInt16(bigEndian: a.sin_port))
    }

    /// A blocking client socket connected to 127.0.0.1:port.
    public static func connect(port: UInt16) throws -> FileDescriptor {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        a.sin_port = port.bigEndian
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { close(fd); throw Errno(rawValue: errno) }
        return FileDescriptor(rawValue: fd)
    }

    public static func accept(_ listener: FileDescriptor) throws -> FileDescriptor {
        let fd = cnm_accept_cloexec(listener.rawValue, 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        return FileDescriptor(rawValue: fd)
    }

    /// Writes everything (blocking).
    public static func sendAll(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = send(fd.rawValue, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 { if errno == EINTR { continue }; throw Errno(rawValue: errno) }
            done += n
        }
    }

    public static func sendAll(_ fd: FileDescriptor, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll(fd, $0) }
    }

    /// Ends the connection with a reset (SO_LINGER 0, then close).
    public static func closeWithReset(_ fd: FileDescriptor) {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd.rawValue, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        _ = try? fd.close()
    }
}
