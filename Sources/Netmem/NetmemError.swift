import SystemPackage

/// Everything that can go wrong in the Netmem core because of bad configuration or what
/// the system refused. Programming errors (double return, a buffer given to a pool that
/// does not own it) are not errors: they trap with a message that names the buffer.
public enum NetmemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A chunk size that is not a power of two, or outside what the provider supports.
    case invalidChunkSize(Int, allowed: String)
    /// A pool or provider asked to hold no chunks (or a negative count).
    case invalidChunkCount(Int)
    /// The pool's fragment size is larger than its chunks.
    case fragmentLargerThanChunk(fragment: Int, chunk: Int)
    /// A pool asked for chunks of one size from a provider that hands out another.
    case chunkSizeMismatch(pool: Int, provider: Int)
    /// An option value outside its range.
    case invalidOption(name: String, value: String, reason: String)
    /// `mmap` refused the mapping.
    case mapFailed(bytes: Int, errno: Errno)
    /// No 2 MiB huge pages are free and falling back to transparent huge pages was not allowed.
    case hugePagesUnavailable(requested: Int, free: Int)
    /// `mlock` refused to lock the memory (usually `ulimit -l`).
    case memoryLockFailed(bytes: Int, limit: UInt64?, errno: Errno)
    /// A system call failed.
    case systemCall(String, Errno)
    /// All 65535 area identifiers are in use.
    case tooManyAreas

    public var description: String {
        switch self {
        case let .invalidChunkSize(size, allowed):
            return "invalid chunk size \(size): \(allowed)"
        case let .invalidChunkCount(n):
            return "invalid chunk count \(n): a pool or provider needs at least one chunk"
        case let .fragmentLargerThanChunk(fragment, chunk):
            return "fragment size \(fragment) is larger than the chunk size \(chunk)"
        case let .chunkSizeMismatch(pool, provider):
            return "the pool wants \(pool)-byte chunks but its provider hands out \(provider)-byte chunks"
        case let .invalidOption(name, value, reason):
            return "invalid \(name) '\(value)': \(reason)"
        case let .mapFailed(bytes, errno):
            return "mmap of \(bytes) bytes failed: \(errno)"
        case let .hugePagesUnavailable(requested, free):
            return "\(requested) huge pages of 2 MiB needed but only \(free) are free; "
                + "reserve them with `echo \(requested) > /proc/sys/vm/nr_hugepages` (as root), "
                + "or allow the transparent-huge-page fallback"
        case let .memoryLockFailed(bytes, limit, errno):
            let lim = limit.map { $0 == UInt64.max ? "unlimited" : "\($0) bytes" } ?? "unknown"
            return "mlock of \(bytes) bytes failed: \(errno) (RLIMIT_MEMLOCK is \(lim)); "
                + "raise it with `ulimit -l` or run without memory locking"
        case let .systemCall(name, errno):
            return "\(name) failed: \(errno)"
        case .tooManyAreas:
            return "too many memory areas: all 65535 area identifiers are in use"
        }
    }
}
