import SystemPackage

/// What can go wrong in the io_uring data path because the kernel refused something, a
/// feature is missing, or a peer or file misbehaved. Programming errors trap instead.
public enum URingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed; the string names it (and what it was for).
    case systemCall(String, Errno)
    /// The kernel lacks a feature this operation needs; the string says which and what
    /// to do.
    case unsupported(String)
    /// A configuration value outside its range.
    case invalidConfiguration(String)
    /// The pool could not supply the buffers a ring needs.
    case outOfBuffers(String)
    /// A wait ran past its deadline.
    case timedOut(String)

    public var description: String {
        switch self {
        case let .systemCall(name, errno): return "\(name) failed: \(errno)"
        case let .unsupported(what): return "not supported by this kernel: \(what)"
        case let .invalidConfiguration(what): return "invalid configuration: \(what)"
        case let .outOfBuffers(what): return "out of buffers: \(what)"
        case let .timedOut(what): return "timed out: \(what)"
        }
    }

    /// Converts a negative errno returned by the C shim.
    @inline(never)
    static func check(_ r: Int32, _ name: @autoclosure () -> String) throws(URingError) -> Int32 {
        if r < 0 { throw .systemCall(name(), Errno(rawValue: -r)) }
        return r
    }
}
