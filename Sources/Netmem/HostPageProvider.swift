import CNetmemLinux
import Glibc

/// Options for how a provider's memory is mapped.
public struct MemoryOptions: OptionSet, Sendable {
    /// The option bits.
    public let rawValue: Int
    /// Creates options from their bits.
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Lock the memory (`mlock`) so it is never swapped; fails clearly under `ulimit -l`.
    public static let lock = MemoryOptions(rawValue: 1 << 0)
    /// Ask for transparent huge pages (`MADV_HUGEPAGE`).
    public static let transparentHugePages = MemoryOptions(rawValue: 1 << 1)
    /// Fault every page in up front (`MAP_POPULATE`).
    public static let populate = MemoryOptions(rawValue: 1 << 2)
}

/// Chunks of anonymous memory (`mmap(MAP_ANONYMOUS)`), 2 KiB to 2 MiB, a power of two.
public final class HostPageProvider: MemoryProvider {
    let source: MappedChunkSource
    /// How the memory was mapped.
    public let options: MemoryOptions

    /// Maps `chunkCount` chunks of `chunkSize` bytes. Throws `invalidChunkSize` or
    /// `invalidChunkCount` for a bad geometry, `mapFailed` when `mmap` fails, and
    /// `memoryLockFailed` when `.lock` was asked for and `mlock` fails.
    public init(chunkSize: Int, chunkCount: Int, options: MemoryOptions = []) throws(NetmemError) {
        try ChunkGeometry.validate(chunkSize: chunkSize, chunkCount: chunkCount)
        let length = chunkSize * chunkCount
        var flags = MAP_PRIVATE | MAP_ANONYMOUS
        if options.contains(.populate) { flags |= CNM_MAP_POPULATE }
        var memory = try MappedMemory(length: length, flags: flags)
        if options.contains(.transparentHugePages) { memory.advise(CNM_MADV_HUGEPAGE) }
        if options.contains(.lock) { memory = try memory.locking() }
        source = try MappedChunkSource(memory: memory, name: "host", chunkSize: chunkSize, chunkCount: chunkCount)
        self.options = options
    }

    /// The area holding this provider's chunks.
    public var area: NetmemArea { source.area }
    public var chunkSize: Int { source.area.chunkSize }
    public func allocateChunks(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int { source.allocate(into: buffer) }
    public func releaseChunk(_ ref: NetmemRef) -> ChunkRelease { source.release(ref) }
    public func describe() -> ProviderDescription {
        source.describe(kind: "host", details: [("thp", options.contains(.transparentHugePages) ? "advised" : "no")])
    }
}
