import Glibc
import Netmem
import NetmemURing
import Synchronization
import SystemPackage

/// Helpers for the io_uring tests: threads, loopback sockets, deterministic data.
enum URingTest {
    /// Whether io_uring with provided-buffer rings works here (tests that need it are
    /// skipped otherwise, with the reason printed by `skipReason`).
    static let features: IOURing.Features? = try? IOURing.probeFeatures()
    static var hasBufferRings: Bool { features?.providedBufferRings ?? false }
    static var hasIncremental: Bool { features?.incrementalBuffers ?? false }
    static var hasSendZC: Bool { features?.sendZeroCopy ?? false }

    static func skipReason(_ what: String) -> Bool {
        print("SKIP: \(what) is not available on this kernel (features: \(features.map { "\($0)" } ?? "io_uring unavailable"))")
        return false
    }

    /// A thread that runs `body` and can be joined.
    final class Thread: @unchecked Sendable {
        private var tid = pthread_t()
        private let box: Box
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ b: @escaping @Sendable () -> Void) { body = b }
        }

        init(_ body: @escaping @Sendable () -> Void) {
            box = Box(body)
            let arg = Unmanaged.passRetained(box).toOpaque()
            let r = pthread_create(&tid, nil, { raw in
                let b = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                b.body()
                return nil
            }, arg)
            precondition(r == 0, "pthread_create failed: \(r)")
        }

        func join() { pthread_join(tid, nil) }
    }

    /// A listening socket on 127.0.0.1 with a kernel-chosen port.
    static func listener() throws -> (FileDescriptor, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        a.sin_port = 0
        var r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0, listen(fd, 64) == 0 else { close(fd); throw Errno(rawValue: errno) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        r = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard r == 0 else { close(fd); throw Errno(rawValue: errno) }
        return (FileDescriptor(rawValue: fd), UInt16(bigEndian: a.sin_port))
    }

    /// A blocking client socket connected to 127.0.0.1:port.
    static func connect(port: UInt16) throws -> FileDescriptor {
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

    static func accept(_ listener: FileDescriptor) throws -> FileDescriptor {
        let fd = Glibc.accept(listener.rawValue, nil, nil)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        return FileDescriptor(rawValue: fd)
    }

    /// Writes everything (blocking).
    static func sendAll(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = send(fd.rawValue, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 { if errno == EINTR { continue }; throw Errno(rawValue: errno) }
            done += n
        }
    }

    /// Deterministic pseudo-random bytes (xorshift64*).
    static func bytes(count: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i < count {
                x ^= x >> 12; x ^= x << 25; x ^= x >> 27
                var v = x &* 0x2545_F491_4F6C_DD1D
                let n = min(8, count - i)
                withUnsafeBytes(of: &v) { raw.baseAddress!.advanced(by: i).copyMemory(from: $0.baseAddress!, byteCount: n) }
                i += n
            }
        }
        return out
    }

    /// Message sizes from 1 byte to 4 MiB (the edges plus deterministic random ones).
    static func messageSizes(seed: UInt64, count: Int) -> [Int] {
        var sizes = [1, 4 << 20, 2, 4095, 65536, 65537]
        var x = seed | 1
        while sizes.count < count {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27
            let r = x &* 0x2545_F491_4F6C_DD1D
            // Log-uniform between 1 B and 4 MiB.
            let bits = Int(r % 23)  // 0...22
            let base = 1 << bits
            sizes.append(min(4 << 20, base + Int((r >> 8) % UInt64(base))))
        }
        return sizes
    }

    /// A pool over host pages.
    static func pool(chunkSize: Int, chunks: Int, name: String) throws -> (PagePool, HostPageProvider) {
        let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: name))
        return (pool, provider)
    }
}

/// Collects events (RX thread) and the bytes of each connection.
final class StreamCollector: @unchecked Sendable {
    var bytes: [ConnectionID: [UInt8]] = [:]
    var ends: [ConnectionID: ConnectionEnd] = [:]
    var order: [ConnectionID] = []
    var offsetsContiguous = true

    func take(_ seg: ReceivedSegment) {
        var b = bytes[seg.connection, default: []]
        if UInt64(b.count) != seg.streamOffset { offsetsContiguous = false }
        b.append(contentsOf: seg.bytes!)
        bytes[seg.connection] = b
    }
}
