import NetmemDevice

/// Gives tokens back in as few `dontNeed` calls as the kernel's limits allow: runs of
/// consecutive tokens become ranges, at most `TokenLimits.maxRanges` ranges and
/// `TokenLimits.maxFragments` tokens per call. A call that fails is retried token by
/// token, so one bad token never keeps the others out.
enum TokenGiveBack {
    struct Result: Equatable {
        var freed = 0
        /// Tokens the consumer refused (unknown, already returned, consumer closed).
        var refused = 0
    }

    static func giveBack(_ tokens: [UInt32], to consumer: any TokenReturning) -> Result {
        var result = Result()
        var ranges: [TokenRange] = []
        var inCall = 0
        func flush() {
            guard !ranges.isEmpty else { return }
            do {
                result.freed += try consumer.dontNeed(ranges)
            } catch {
                // Tokens before the bad one may have been freed: returning them again is
                // refused harmlessly, so count only what the one-by-one pass frees.
                let freedBefore: Int
                switch error {
                case let .unknownToken(_, n), let .alreadyReturned(_, n): freedBefore = n
                default: freedBefore = 0
                }
                var skip = freedBefore
                for r in ranges {
                    for i in 0..<r.count {
                        if skip > 0 { skip -= 1; continue }
                        do { result.freed += try consumer.dontNeed([TokenRange(token: r.start &+ i)]) } catch { result.refused += 1 }
                    }
                }
                result.freed += freedBefore
            }
            ranges.removeAll(keepingCapacity: true)
            inCall = 0
        }
        for t in tokens {
            if inCall == TokenLimits.maxFragments { flush() }
            if let last = ranges.last, t != 0, last.start &+ last.count == t {
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
