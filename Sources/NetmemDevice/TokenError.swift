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

    /// Tokens the failing call freed before it stopped.
    public var freedBefore: Int {
        switch self {
        case let .unknownToken(_, n), let .alreadyReturned(_, n): return n
        default: return 0
        }
    }

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
