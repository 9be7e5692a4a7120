/// A plugin call that returned something other than `ncclSuccess`.
public struct NCCLCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public let call: String
    /// The `ncclResult_t` value (-1: the table has no such function).
    public let code: Int32

    public var resultName: String {
        switch code {
        case -1: return "missing from the plugin's table"
        case 1: return "ncclUnhandledCudaError"
        case 2: return "ncclSystemError"
        case 3: return "ncclInternalError"
        case 4: return "ncclInvalidArgument"
        case 5: return "ncclInvalidUsage"
        case 6: return "ncclRemoteError"
        default: return "result \(code)"
        }
    }

    public var description: String { "\(call) returned \(resultName)" }
}

/// Why the harness or bench could not run (as opposed to a case that failed).
public enum NCCLCheckError: Error, Sendable, CustomStringConvertible {
    case load(String)
    case peer(String)
    case setup(String)

    public var description: String {
        switch self {
        case let .load(m): return "cannot load the plugin: \(m)"
        case let .peer(m): return "peer process: \(m)"
        case let .setup(m): return m
        }
    }
}
