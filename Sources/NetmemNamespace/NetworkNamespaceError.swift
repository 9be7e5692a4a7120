import SystemPackage

/// Why the calling thread could not switch network namespace.
public enum NetworkNamespaceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No namespace of that name under /var/run/netns.
    case noSuchNamespace(String)
    /// A system call failed; the string names it (and its argument).
    case systemCall(String, Errno)

    public var description: String {
        switch self {
        case let .noSuchNamespace(name):
            return "no network namespace named '\(name)' (see `ip netns list`)"
        case let .systemCall(call, errno):
            return "\(call) failed: \(errno)"
        }
    }

    /// The errno behind the failure.
    public var errno: Errno {
        switch self {
        case .noSuchNamespace: return .noSuchFileOrDirectory
        case let .systemCall(_, e): return e
        }
    }
}
