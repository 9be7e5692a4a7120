import Netmem
import SystemPackage

/// Everything that can go wrong setting up or running an AF_XDP socket because of the
/// configuration, the interface, or what the kernel refused.
public enum XDPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A configuration value outside what AF_XDP accepts.
    case invalidConfiguration(name: String, value: String, reason: String)
    /// `if_nametoindex` found no interface of that name (in this network namespace).
    case noSuchInterface(String)
    /// The kernel refused for lack of privilege (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW).
    case notPermitted(operation: String, Errno)
    /// The driver has no zero-copy AF_XDP support.
    case zeroCopyUnsupported(interface: String, Errno)
    /// The queue stayed busy (another socket bound, or the previous one still closing).
    case queueBusy(interface: String, queue: UInt32, waitedMilliseconds: Int)
    /// The verifier rejected the redirect program.
    case programRejected(errno: Errno, log: String)
    /// The UMEM's memory could not be set up.
    case memory(NetmemError)
    /// A system call failed.
    case systemCall(String, Errno)

    public var description: String {
        switch self {
        case let .invalidConfiguration(name, value, reason):
            return "invalid \(name) '\(value)': \(reason)"
        case let .noSuchInterface(name):
            return "no network interface named '\(name)' in this network namespace (see `ip link`)"
        case let .notPermitted(op, errno):
            return "\(op) was refused (\(errno)): AF_XDP and XDP programs need CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW (run as root)"
        case let .zeroCopyUnsupported(interface, errno):
            return "the driver of '\(interface)' has no AF_XDP zero-copy support (\(errno)); use --mode copy"
        case let .queueBusy(interface, queue, ms):
            return "queue \(queue) of '\(interface)' is still busy after \(ms) ms: another AF_XDP socket or XDP program holds it"
        case let .programRejected(errno, log):
            return "the kernel refused the XDP redirect program (\(errno))" + (log.isEmpty ? "" : ": \(log)")
        case let .memory(error):
            return "UMEM memory: \(error)"
        case let .systemCall(name, errno):
            return "\(name) failed: \(errno)"
        }
    }

    /// Converts a negative errno from the C shim, naming the operation.
    static func from(_ result: Int32, _ operation: String) -> XDPError {
        let e = Errno(rawValue: -result)
        if e == .notPermitted || e == .permissionDenied { return .notPermitted(operation: operation, e) }
        return .systemCall(operation, e)
    }
}
