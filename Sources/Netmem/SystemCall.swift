import Glibc
import SystemPackage

/// Runs a system call that returns -1 with `errno` set on failure: the result, or the
/// `Errno`, converted once here; EINTR is retried. The one place Netmem's Swift modules
/// turn errno into a typed error (swift-system's `valueOrErrno` habit).
@inline(__always)
package func retryingSystemCall<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Errno(rawValue: errno)
        if e != .interrupted { throw e }
    }
}
