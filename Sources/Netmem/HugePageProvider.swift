import CNetmemLinux
import Glibc
import SystemPackage

/// Chunks carved from 2 MiB huge pages (`MAP_HUGETLB`). When no huge pages are reserved,
/// falls back to transparent huge pages only if the caller allowed it; otherwise throws
/// `hugePagesUnavailable`, which says how to reserve them.
public final class HugePageProvider: MemoryProvider {
    /// The size of one huge page in bytes (2 MiB); mappings are rounded up to a multiple of it.
    public static let hugePageSize = 2 << 20
    let source: MappedChunkSource
    /// True when the memory came from the transparent-huge-page fallback.
    public let usesFallback: Bool
    /// With the fallback: the system's transparent-huge-page mode when the memory was
    /// mapped ("always", "madvise", "never"); with "never" the fallback is ordinary pages.
    public let transparentHugePageMode: String?

    /// Maps `chunkCount` chunks of `chunkSize` bytes from huge pages. With
    /// `allowTransparentFallback`, maps ordinary memory advised for transparent huge pages when
    /// no huge pages are reserved; without it, throws `hugePagesUnavailable`. `lock` locks the
    /// memory (`mlock`). Also throws `invalidChunkSize`, `invalidChunkCount`, `mapFailed` and
    /// `memoryLockFailed`.
    public init(chunkSize: Int = HugePageProvider.hugePageSize, chunkCount: Int,
                allowTransparentFallback: Bool = false, lock: Bool = false) throws(NetmemError) {
        try ChunkGeometry.validate(chunkSize: chunkSize, chunkCount: chunkCount)
        let bytes = chunkSize * chunkCount
        let length = (bytes + Self.hugePageSize - 1) / Self.hugePageSize * Self.hugePageSize
        var memory: MappedMemory
        var fallback = false
        do {
            memory = try MappedMemory(length: length, flags: MAP_PRIVATE | MAP_ANONYMOUS | CNM_MAP_HUGETLB | CNM_MAP_HUGE_2MB)
        } catch {
            guard case .mapFailed(_, let e) = error, e == .noMemory || e == .invalidArgument else { throw error }
            guard allowTransparentFallback else {
                throw .hugePagesUnavailable(requested: length / Self.hugePageSize, free: Self.freeHugePages())
            }
            memory = try MappedMemory(length: length, flags: MAP_PRIVATE | MAP_ANONYMOUS)
            memory.advise(CNM_MADV_HUGEPAGE)
            fallback = true
        }
        if lock { memory = try memory.locking() }
        usesFallback = fallback
        transparentHugePageMode = fallback ? Self.readTransparentHugePageMode() : nil
        source = try MappedChunkSource(memory: memory, name: fallback ? "hugepage-thp" : "hugepage",
                                       chunkSize: chunkSize, chunkCount: chunkCount)
    }

    /// Free 2 MiB huge pages, from `/sys/kernel/mm/hugepages`.
    public static func freeHugePages() -> Int {
        let path = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &buf, 31)
        guard n > 0 else { return 0 }
        return Int(String(decoding: buf[..<n].filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self)) ?? 0
    }

    /// The bracketed mode of `/sys/kernel/mm/transparent_hugepage/enabled`, if readable.
    public static func readTransparentHugePageMode() -> String? {
        let fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buf, 127)
        guard n > 0, let open = buf[..<n].firstIndex(of: UInt8(ascii: "[")),
              let close = buf[open..<n].firstIndex(of: UInt8(ascii: "]")) else { return nil }
        return String(decoding: buf[(open + 1)..<close], as: UTF8.self)
    }

    /// The area holding this provider's chunks.
    public var area: NetmemArea { source.area }
    public var chunkSize: Int { source.area.chunkSize }
    public func allocateChunks(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int { source.allocate(into: buffer) }
    public func releaseChunk(_ ref: NetmemRef) -> ChunkRelease { source.release(ref) }
    public func describe() -> ProviderDescription {
        let backing: String
        if !usesFallback {
            backing = "hugetlb 2 MiB"
        } else if transparentHugePageMode == "never" {
            backing = "ordinary pages (no huge pages reserved, and transparent huge pages are off: the mode is never)"
        } else {
            backing = "transparent huge pages (fallback; mode \(transparentHugePageMode ?? "unknown"))"
        }
        return source.describe(kind: "hugepage", details: [("backing", backing)])
    }
}
