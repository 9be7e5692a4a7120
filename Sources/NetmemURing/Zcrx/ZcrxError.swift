import SystemPackage

/// Why io_uring zero-copy receive could not be set up or used.
public enum ZcrxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The ring zcrx needs (SINGLE_ISSUER | DEFER_TASKRUN | CQE32) was refused.
    case ringSetup(URingError)
    /// Mapping the rings, the refill queue or the area failed.
    case mapFailed(what: String, bytes: Int, errno: Errno)
    /// `IORING_REGISTER_ZCRX_IFQ` was refused; `reason` says what that means.
    case registrationRefused(interface: String, queue: UInt32, errno: Errno, reason: String)
    /// No interface with that name.
    case noSuchInterface(String)
    /// Bad parameters (refill entries not a power of two, area not page-aligned, …).
    case invalidConfiguration(String)
    /// The kernel ended or refused a zero-copy receive.
    case receiveFailed(Errno)
    /// Submitting to or waiting on the queue's io_uring failed.
    case ring(URingError)

    public var description: String {
        switch self {
        case let .ringSetup(e):
            return "setting up an io_uring with SINGLE_ISSUER|DEFER_TASKRUN|CQE32 (which zcrx needs) failed: \(e); needs Linux 6.1+"
        case let .mapFailed(what, bytes, e):
            return "mapping the \(what) (\(bytes) bytes) failed: \(e)"
        case let .registrationRefused(interface, queue, e, reason):
            return "registering a zero-copy receive queue on \(interface) queue \(queue) failed: \(e): \(reason)"
        case let .noSuchInterface(name):
            return "no interface named '\(name)' (see `ip link`)"
        case let .invalidConfiguration(why):
            return "invalid zcrx configuration: \(why)"
        case let .receiveFailed(e):
            return "zero-copy receive failed: \(e)"
        case let .ring(e):
            return "the zcrx queue's io_uring: \(e)"
        }
    }

    /// What a registration errno means for zcrx, in words a user can act on.
    public static func explainRegistration(_ errno: Errno, interface: String) -> String {
        switch errno {
        case .notSupported:
            return "the NIC driver of \(interface) lacks zero-copy receive support (it needs queue management ops, "
                + "header split and page-pool memory providers: mlx5, bnxt, gve, fbnic); loopback and veth never have it; "
                + "check `netmem doctor` and `ethtool -g \(interface)` (tcp-data-split)"
        case .invalidArgument:
            return "the kernel refused the arguments: on \(interface) this means its driver lacks zero-copy receive support "
                + "(virtual devices such as lo and veth have none), or header split is off "
                + "(`ethtool -G \(interface) tcp-data-split on`), or the queue index is out of range"
        case .operationNotSupportedByDevice:
            return "no such device or queue for zero-copy receive: \(interface) has no driver support or that RX queue does not exist "
                + "(check `ethtool -l \(interface)`)"
        case .notPermitted, .permissionDenied:
            return "registering a zero-copy receive queue needs CAP_NET_ADMIN"
        case .noMemory, .resourceTemporarilyUnavailable:
            return "the area could not be pinned: raise the memlock limit (`ulimit -l`)"
        default:
            return "see `netmem doctor` for what this machine supports"
        }
    }
}
