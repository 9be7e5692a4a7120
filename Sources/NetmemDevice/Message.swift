import Netmem

/// Where one piece of received payload landed, and the token that gives it back.
/// Mirrors the kernel's `struct dmabuf_cmsg` (`frag_offset`, `frag_size`, `frag_token`,
/// `dmabuf_id`).
public struct Fragment: Sendable, Hashable, CustomStringConvertible {
    /// Offset of the payload from the start of its region (or area, for paths whose
    /// memory is a plain area, such as an AF_XDP UMEM).
    public var regionOffset: UInt64
    /// Payload bytes.
    public var length: Int
    /// The token that returns this fragment (`dontNeed`), scoped to one consumer.
    public var token: UInt32
    /// Which region or binding the offset is in (the kernel's `dmabuf_id`).
    public var regionID: UInt32
    /// The chunk holding the bytes and where in it, when Netmem's own pool holds it
    /// (nil for fragments the kernel's own page pool holds, as with devmem TCP).
    public var location: NetmemFragment?

    public init(regionOffset: UInt64, length: Int, token: UInt32, regionID: UInt32, location: NetmemFragment? = nil) {
        self.regionOffset = regionOffset
        self.length = length
        self.token = token
        self.regionID = regionID
        self.location = location
    }

    public var description: String { "fragment(token \(token), region \(regionID) +\(regionOffset), \(length) bytes)" }
}

/// A received message after header split: a linear part in host memory (readable:
/// headers, or small payloads) and the payload as fragments, possibly in memory the CPU
/// may not read (the kernel's skb with `skb_frags_readable`).
public struct Message: Sendable {
    /// Readable bytes copied into host memory (protocol headers, or a small payload).
    public var linear: [UInt8]
    /// Payload pieces in order.
    public var fragments: [Fragment]

    public init(linear: [UInt8] = [], fragments: [Fragment] = []) {
        self.linear = linear
        self.fragments = fragments
    }

    /// Payload bytes across all fragments.
    public var payloadLength: Int { fragments.reduce(0) { $0 + $1.length } }
}

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

/// Something fragments' tokens go back to: Netmem's own token table, or a devmem TCP
/// socket (`SO_DEVMEM_DONTNEED`), or an io_uring zcrx refill ring.
public protocol TokenReturning: AnyObject {
    /// Gives back the tokens in `ranges` and returns how many fragments were freed.
    /// Mirrors `setsockopt(SO_DEVMEM_DONTNEED)`.
    func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int
}

/// Why giving tokens back failed. Nothing is freed wrongly: tokens before the bad one
/// in the same call may have been freed (the count says how many), none after it.
public enum TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooManyRanges(Int)
    case tooManyFragments(Int)
    /// A token this consumer never issued (or that belongs to another consumer).
    case unknownToken(UInt32, freedBefore: Int)
    /// A token already given back.
    case alreadyReturned(UInt32, freedBefore: Int)
    /// The consumer is closed.
    case consumerClosed
    /// The kernel refused (devmem TCP / zcrx paths).
    case kernel(String)

    public var description: String {
        switch self {
        case let .tooManyRanges(n):
            return "\(n) token ranges in one call; at most \(TokenLimits.maxRanges) are allowed"
        case let .tooManyFragments(n):
            return "\(n) tokens in one call; at most \(TokenLimits.maxFragments) are allowed"
        case let .unknownToken(t, freed):
            return "token \(t) was not issued to this consumer (\(freed) freed before it)"
        case let .alreadyReturned(t, freed):
            return "token \(t) was already returned (\(freed) freed before it)"
        case .consumerClosed:
            return "the consumer is closed"
        case let .kernel(message):
            return "the kernel refused the token return: \(message)"
        }
    }
}
