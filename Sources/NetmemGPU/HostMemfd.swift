import CNetmemLinux
import Glibc
import SystemPackage

/// A mapped memfd: the host memory behind the stand-in driver's "device" allocations and
/// behind pinned host regions. Owns the fd and the mapping.
package final class HostMemfd: @unchecked Sendable {
    package let fd: Int32
    package let base: UnsafeMutableRawPointer
    package let length: Int

    /// A `length`-byte memfd, mapped read-write and shared. Mirrors `memfd_create(2)` +
    /// `ftruncate(2)` + `mmap(2)`.
    package init(name: String, length: Int) throws(GPUError) {
        guard length > 0 else { throw .invalidArgument("memory of \(length) bytes") }
        let fd = cnm_memfd_create(name, CNM_MFD_CLOEXEC | CNM_MFD_ALLOW_SEALING)
        guard fd >= 0 else { throw .region(.systemCall("memfd_create", Errno(rawValue: -fd))) }
        guard ftruncate(fd, off_t(length)) == 0 else {
            let e = Errno(rawValue: errno)
            close(fd)
            throw .region(.systemCall("ftruncate", e))
        }
        var err: Int32 = 0
        guard let p = cnm_mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0, &err) else {
            close(fd)
            throw .region(.systemCall("mmap", Errno(rawValue: err)))
        }
        self.fd = fd
        base = p
        self.length = length
    }

    /// A duplicate of the fd the caller owns. Mirrors `fcntl(F_DUPFD_CLOEXEC)`.
    package func duplicate() throws(GPUError) -> FileDescriptor {
        let d = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard d >= 0 else { throw .region(.systemCall("fcntl(F_DUPFD_CLOEXEC)", Errno(rawValue: errno))) }
        return FileDescriptor(rawValue: d)
    }

    deinit {
        munmap(base, length)
        close(fd)
    }
}

/// Rounds `n` up to a multiple of `alignment` (a power of two).
@inline(__always)
package func roundUp(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }
