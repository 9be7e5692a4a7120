/// Something fragments' tokens go back to: Netmem's own `TokenTable`, a devmem TCP
/// socket (`SO_DEVMEM_DONTNEED`), or an io_uring zcrx refill ring.
public protocol TokenReturning: AnyObject, Sendable {
    /// Gives back the tokens in `ranges` and returns how many fragments were freed. At
    /// most `TokenLimits.maxRanges` ranges and `TokenLimits.maxFragments` tokens per call.
    /// Mirrors `setsockopt(SO_DEVMEM_DONTNEED)`.
    func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int
}

/// What `giveBack` did.
public struct TokenGiveBack: Sendable, Equatable, CustomStringConvertible {
    /// Tokens freed.
    public var freed = 0
    /// Tokens the consumer refused (unknown, already returned, consumer closed).
    public var refused = 0
    /// `dontNeed` calls made.
    public var calls = 0
    /// A result with every count zero.
    public init() {}
    public var description: String { "\(freed) freed, \(refused) refused, \(calls) calls" }
}

extension TokenReturning {
    /// Gives `tokens` back in as few `dontNeed` calls as the kernel's limits allow: runs
    /// of consecutive tokens become ranges, at most `TokenLimits.maxRanges` ranges and
    /// `TokenLimits.maxFragments` tokens per call. A call that fails is retried token by
    /// token past the bad one, so one bad token never keeps the others out. Every path
    /// that returns tokens in bulk goes through here.
    @discardableResult
    public func giveBack(_ tokens: some Sequence<UInt32>) -> TokenGiveBack {
        var result = TokenGiveBack()
        var ranges: [TokenRange] = []
        var inCall = 0
        func flush() {
            guard !ranges.isEmpty else { return }
            result.calls += 1
            do {
                result.freed += try dontNeed(ranges)
            } catch {
                // Tokens before the bad one were freed; go on one by one after them.
                var skip = error.freedBefore
                result.freed += skip
                for r in ranges {
                    for i in 0..<r.count {
                        if skip > 0 { skip -= 1; continue }
                        result.calls += 1
                        do { result.freed += try dontNeed([TokenRange(token: r.start &+ i)]) } catch { result.refused += 1 }
                    }
                }
            }
            ranges.removeAll(keepingCapacity: true)
            inCall = 0
        }
        for t in tokens {
            if inCall == TokenLimits.maxFragments { flush() }
            if let last = ranges.last, last.start &+ last.count == t, t != 0 {
                ranges[ranges.count - 1].count += 1
            } else {
                if ranges.count == TokenLimits.maxRanges { flush() }
                ranges.append(TokenRange(token: t))
            }
            inCall += 1
        }
        flush()
        return result
    }
}
