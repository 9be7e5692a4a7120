/// A run of tokens to give back: `count` tokens starting at `start`. Mirrors the
/// kernel's `struct dmabuf_token`.
public struct TokenRange: Sendable, Hashable {
    public var start: UInt32
    public var count: UInt32
    public init(start: UInt32, count: UInt32) {
        self.start = start
        self.count = count
    }
    public init(token: UInt32) { self.init(start: token, count: 1) }
}

/// The kernel's limits on one `SO_DEVMEM_DONTNEED` call, which Netmem's own token
/// tables enforce too.
public enum TokenLimits {
    /// Ranges in one call (the kernel's `MAX_DONTNEED_TOKENS`).
    public static let maxRanges = 128
    /// Tokens (fragments) freed in one call (the kernel's `MAX_DONTNEED_FRAGS`).
    public static let maxFragments = 1024
}
