/// What became of a chunk a pool gave back to its provider.
public enum ChunkRelease: Sendable, Equatable {
    /// The provider keeps it and may hand it out again.
    case reusable
    /// The provider has stopped lending (unbound, torn down): the chunk stays with it and
    /// will not be handed out again.
    case retired
}

/// How a provider describes itself, for statistics and dumps.
public struct ProviderDescription: Sendable, CustomStringConvertible {
    /// A short name of the kind of memory: "host", "hugepage", "memfd", "devmem", …
    public var kind: String
    /// Bytes per chunk.
    public var chunkSize: Int
    /// Chunks the provider has in all, held or handed out.
    public var chunkCount: Int
    /// Chunks the provider holds now (not handed to any pool).
    public var available: Int
    /// Whether the CPU may read the memory.
    public var readable: Bool
    /// Further facts, in order: ("locked", "yes"), ("fd", "7"), …
    public var details: [(String, String)]

    /// Creates a description from its parts.
    public init(kind: String, chunkSize: Int, chunkCount: Int, available: Int, readable: Bool,
                details: [(String, String)] = []) {
        self.kind = kind
        self.chunkSize = chunkSize
        self.chunkCount = chunkCount
        self.available = available
        self.readable = readable
        self.details = details
    }

    public var description: String {
        var s = "\(kind): \(chunkCount) × \(chunkSize) bytes, \(available) available, "
            + (readable ? "readable" : "device only")
        for (k, v) in details { s += ", \(k) \(v)" }
        return s
    }
}

/// Where a page pool gets its chunks. Mirrors the kernel's `memory_provider_ops`:
/// bulk allocation, a release that says what became of the chunk, a description, and a
/// teardown hook. Implementations are thread-safe: several pools (one per queue) may
/// share one provider.
public protocol MemoryProvider: AnyObject, Sendable {
    /// The size of every chunk this provider hands out.
    var chunkSize: Int { get }

    /// Fills the front of `buffer` with chunks and returns how many. Mirrors
    /// `alloc_netmems`. Returns 0 when nothing is left or the provider stopped lending.
    func allocateChunks(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int

    /// `count` chunks adjacent in one area, as one reference to the first; nil when no
    /// such run is free. Providers without contiguous runs return nil.
    func allocateContiguous(count: Int) -> NetmemRef?

    /// Takes a chunk back. Mirrors `release_netmem`.
    func releaseChunk(_ ref: NetmemRef) -> ChunkRelease

    /// Whether chunks released now become reusable; false once the provider is unbound
    /// or torn down. A pool stops refilling from its recycle ring when this turns false.
    var isLending: Bool { get }

    /// Describes the provider. Mirrors `nl_fill` (for dumps and statistics).
    func describe() -> ProviderDescription

    /// Called once when a pool that used this provider is freed (its last chunk came
    /// back). Mirrors `destroy`.
    func poolDidFinish(id: UInt32)
}

extension MemoryProvider {
    /// By default a provider has no contiguous runs: returns nil.
    public func allocateContiguous(count: Int) -> NetmemRef? { nil }
    /// By default a provider lends for its whole life: true.
    public var isLending: Bool { true }
    /// By default a provider ignores the end of a pool.
    public func poolDidFinish(id: UInt32) {}
}
