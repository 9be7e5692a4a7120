/// A run of tokens to give back: `count` tokens starting at `start`. Mirrors the
/// kernel's `struct dmabuf_token`.
public struct TokenRange: Sendable, Hashable {
    /// The first token of the run.
    public var start: UInt32
    /// The number of consecutive tokens.
    public var count: UInt32
    /// The `count` tokens from `start` on.
    public init(start: UInt32, count: UInt32) {
        self.start = start
        self.count = count
    }
    /// A run of the one token `token`.
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
