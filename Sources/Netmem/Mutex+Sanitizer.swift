import CNetmemLinux
import Synchronization

extension Mutex where Value: ~Copyable {
    /// `withLock`, and ThreadSanitizer is told about the lock. The standard library's
    /// `Mutex` waits on a futex directly, which ThreadSanitizer cannot see, so without this
    /// every access the lock protects is reported as a race. In normal builds it costs two
    /// calls to empty functions; use it for every lock in Netmem.
    @inlinable
    package borrowing func withLockChecked<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        // The lock's own address identifies it; taking it touches nothing the lock
        // protects, so it cannot be reported before the acquire below.
        let address = withUnsafePointer(to: self) { UnsafeRawPointer($0) }
        return try withLock { (value: inout sending Value) throws(E) -> sending Result in
            cnm_sanitizer_acquire(address)
            defer { cnm_sanitizer_release(address) }
            return try body(&value)
        }
    }
}
