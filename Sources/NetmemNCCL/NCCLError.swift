import CNetmemNCCL
import SystemPackage

/// What a plugin call reports to NCCL: the result code (`ncclResult_t`) and a message
/// that says what was wrong, logged through NCCL's logger as a warning.
public struct NCCLError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A system call failed on this host (`ncclSystemError`).
        case system
        /// The peer died, closed its side, or broke the wire protocol (`ncclRemoteError`).
        case remote
        /// A bad argument or handle from the caller (`ncclInvalidArgument`).
        case invalidArgument
        /// A legal call used against the interface's rules, e.g. a send larger than its
        /// receive (`ncclInvalidUsage`).
        case invalidUsage
        /// Something this plugin does not do (`ncclInternalError`).
        case unsupported
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// A failed system call: names the call and what it was for.
    public static func system(_ call: String, _ errno: Errno) -> NCCLError {
        NCCLError(.system, "\(call) failed: \(errno)")
    }

    public var result: cnm_nccl_result_t {
        switch kind {
        case .system: return CNM_NCCL_SYSTEM_ERROR
        case .remote: return CNM_NCCL_REMOTE_ERROR
        case .invalidArgument: return CNM_NCCL_INVALID_ARGUMENT
        case .invalidUsage: return CNM_NCCL_INVALID_USAGE
        case .unsupported: return CNM_NCCL_INTERNAL_ERROR
        }
    }

    public var description: String { message }
}
