import CNetmemLinux
import Synchronization

extension Mutex where Value: ~Copyable {
    /// `withLock`, and ThreadSanitizer is told about the lock. The standard library's
    /// `Mutex` waits on a futex directly, which ThreadSanitizer cannot see, so without this
    /// every access the lock protects is reported as a race. In normal builds it costs two
    /// calls to empty functions; use it for every lock in Netmem.
    @inlinable
    public borrowing func withLockChecked<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try withLock { (value: inout sending Value) throws(E) -> sending Result in
            let address = withUnsafeMutablePointer(to: &value) { UnsafeRawPointer($0) }
            cnm_sanitizer_acquire(address)
            defer { cnm_sanitizer_release(address) }
            return try body(&value)
        }
    }
}
