import CNetmemLinux
import Glibc
import SystemPackage

/// Chunks in a memfd region (`memfd_create`), sealed against shrinking, whose file
/// descriptor can be passed to another process (over a Unix socket, or by inheritance)
/// and mapped there to see the same bytes.
public final class SharedMemoryProvider: MemoryProvider {
    let source: MappedChunkSource
    /// The memfd. Owned by the provider: closed when it goes away.
    public let fileDescriptor: FileDescriptor
    /// Whether the memfd was created with `MFD_HUGETLB` (2 MiB huge pages).
    public let hugePages: Bool

    /// Creates a memfd named `name`, sized for `chunkCount` chunks of `chunkSize` bytes (rounded
    /// up to whole huge pages with `hugePages`), seals it against shrinking and maps it shared;
    /// `lock` locks the mapping. Throws `hugePagesUnavailable` when `hugePages` is set and none
    /// can be had, `systemCall` when `memfd_create`, `ftruncate` or `fcntl` fails, and the
    /// geometry, mapping and locking errors.
    public init(name: String = "netmem", chunkSize: Int, chunkCount: Int, hugePages: Bool = false,
                lock: Bool = false) throws(NetmemError) {
        try ChunkGeometry.validate(chunkSize: chunkSize, chunkCount: chunkCount)
        var length = chunkSize * chunkCount
        var flags = CNM_MFD_CLOEXEC | CNM_MFD_ALLOW_SEALING
        if hugePages {
            flags |= CNM_MFD_HUGETLB | CNM_MFD_HUGE_2MB
            length = (length + HugePageProvider.hugePageSize - 1) / HugePageProvider.hugePageSize * HugePageProvider.hugePageSize
        }
        let fd = cnm_memfd_create(name, flags)
        guard fd >= 0 else { throw .systemCall("memfd_create", Errno(rawValue: -fd)) }
        let descriptor = FileDescriptor(rawValue: fd)
        do {
            if ftruncate(fd, off_t(length)) != 0 {
                let e = Errno(rawValue: errno)
                if hugePages && (e == .noMemory || e == .invalidArgument) {
                    throw NetmemError.hugePagesUnavailable(requested: length / HugePageProvider.hugePageSize,
                                                           free: HugePageProvider.freeHugePages())
                }
                throw NetmemError.systemCall("ftruncate", e)
            }
            let r = cnm_fcntl_add_seals(fd, CNM_F_SEAL_SHRINK)
            guard r >= 0 else { throw NetmemError.systemCall("fcntl(F_ADD_SEALS)", Errno(rawValue: -r)) }
            var memory = try MappedMemory(length: length, flags: MAP_SHARED, fd: fd)
            if lock { memory = try memory.locking() }
            source = try MappedChunkSource(memory: memory, name: "memfd", chunkSize: chunkSize, chunkCount: chunkCount)
        } catch {
            try? descriptor.close()
            throw error as! NetmemError
        }
        fileDescriptor = descriptor
        self.hugePages = hugePages
    }

    deinit { try? fileDescriptor.close() }

    /// The size of the memfd in bytes.
    public var length: Int { source.memory.length }
    /// The area holding this provider's chunks.
    public var area: NetmemArea { source.area }
    public var chunkSize: Int { source.area.chunkSize }
    public func allocateChunks(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int { source.allocate(into: buffer) }
    public func releaseChunk(_ ref: NetmemRef) -> ChunkRelease { source.release(ref) }
    public func describe() -> ProviderDescription {
        source.describe(kind: "memfd", details: [("fd", "\(fileDescriptor.rawValue)"), ("hugetlb", hugePages ? "yes" : "no")])
    }
}
