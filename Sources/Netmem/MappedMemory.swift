import CNetmemLinux
import Glibc
import SystemPackage

/// An owned memory mapping, unmapped when it goes away. Shared with the data paths
/// (`package`) for the mappings they own themselves (a zcrx area and refill region).
package struct MappedMemory: ~Copyable, @unchecked Sendable {
    package let base: UnsafeMutableRawPointer
    package let length: Int
    let locked: Bool

    /// Mirrors `mmap(2)`.
    package init(length: Int, protection: Int32 = PROT_READ | PROT_WRITE, flags: Int32, fd: Int32 = -1,
         offset: Int = 0) throws(NetmemError) {
        var err: Int32 = 0
        guard let p = cnm_mmap(nil, length, protection, flags, fd, off_t(offset), &err) else {
            throw .mapFailed(bytes: length, errno: Errno(rawValue: err))
        }
        base = p
        self.length = length
        locked = false
    }

    private init(base: UnsafeMutableRawPointer, length: Int, locked: Bool) {
        self.base = base
        self.length = length
        self.locked = locked
    }

    /// Locks the pages in memory (`mlock(2)`); consumes the mapping and gives it back locked.
    consuming func locking() throws(NetmemError) -> MappedMemory {
        let base = self.base
        let length = self.length
        if mlock(base, length) != 0 {
            let e = Errno(rawValue: errno)
            let raw = cnm_memlock_limit()
            let limit: UInt64? = raw < 0 ? nil : (raw == Int64.max ? UInt64.max : UInt64(raw))
            _ = consume self  // unmaps
            throw .memoryLockFailed(bytes: length, limit: limit, errno: e)
        }
        discard self
        return MappedMemory(base: base, length: length, locked: true)
    }

    /// Advises the kernel (`madvise(2)`); failures are ignored (advice only).
    func advise(_ advice: Int32) {
        _ = madvise(base, length, advice)
    }

    deinit {
        if locked { munlock(base, length) }
        munmap(base, length)
    }
}

/// The free chunks of one area, in a stack. Shared by the host, huge-page and memfd
/// providers; only their slow paths use it, under a lock.
struct ChunkStack: ~Copyable {
    private var free: [UInt32]
    init(count: Int) { free = (0..<UInt32(count)).reversed() }
    var count: Int { free.count }
    mutating func pop() -> UInt32? { free.popLast() }
    mutating func push(_ chunk: UInt32) { free.append(chunk) }
}

/// Validation shared by the providers.
enum ChunkGeometry {
    static let minChunk = 2048
    static let maxChunk = 2 << 20

    static func validate(chunkSize: Int, chunkCount: Int, min: Int = minChunk, max: Int = maxChunk) throws(NetmemError) {
        guard chunkSize >= min, chunkSize <= max, chunkSize & (chunkSize - 1) == 0 else {
            throw .invalidChunkSize(chunkSize, allowed: "a power of two from \(min) to \(max) bytes")
        }
        guard chunkCount > 0, chunkCount <= Int(UInt32.max) else { throw .invalidChunkCount(chunkCount) }
    }
}
