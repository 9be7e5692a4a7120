import CNetmemLinux
import NetmemDevice

/// The zcrx refill queue: a single-producer ring of `struct io_uring_zcrx_rqe` that
/// gives received buffers back to the kernel. We write entries at our tail and publish
/// it with a release store; the kernel consumes from its head. All pointer arithmetic of
/// the zcrx path lives here.
///
/// Mirrors liburing's `struct io_uring_zcrx_rq` and the kernel's `io_zcrx_ring_refill`.
public struct ZcrxRefillRing {
    private let head: UnsafeMutablePointer<UInt32>
    private let tail: UnsafeMutablePointer<UInt32>
    private let entries: UnsafeMutablePointer<cnm_zcrx_rqe>
    /// Ring size (a power of two).
    public let count: UInt32
    private var localTail: UInt32

    /// Views the refill ring inside a mapping at `base`, laid out as the kernel reported
    /// in `offsets` (head, tail, rqes) with `count` entries.
    public init(base: UnsafeMutableRawPointer, offsets: cnm_zcrx_offsets, count: UInt32) {
        precondition(count > 0 && count & (count - 1) == 0, "zcrx refill ring size \(count) must be a power of two")
        head = (base + Int(offsets.head)).assumingMemoryBound(to: UInt32.self)
        tail = (base + Int(offsets.tail)).assumingMemoryBound(to: UInt32.self)
        entries = (base + Int(offsets.rqes)).assumingMemoryBound(to: cnm_zcrx_rqe.self)
        self.count = count
        localTail = cnm_zcrx_load_acquire(tail)
    }

    /// Bytes a refill region needs for `count` entries: the head/tail block aligned to a
    /// cache line (as the kernel lays it out), then the entries, rounded to pages.
    public static func regionSize(entries count: UInt32, pageSize: Int = 4096) -> Int {
        let bytes = 64 + Int(count) * MemoryLayout<cnm_zcrx_rqe>.size
        return (bytes + pageSize - 1) / pageSize * pageSize
    }

    /// Entries we may still write before the kernel consumes more.
    public var free: Int { Int(count &- (localTail &- cnm_zcrx_load_acquire(head))) }

    /// Entries written but not yet published.
    public var unpublished: Int { Int(localTail &- cnm_zcrx_load_acquire(tail)) }

    /// Writes one entry: the buffer at `offset` (area token in the top 16 bits), `length`
    /// bytes. Returns false when the ring is full. Not visible to the kernel until `publish`.
    public mutating func push(offset: UInt64, length: UInt32) -> Bool {
        guard free > 0 else { return false }
        let slot = Int(localTail & (count - 1))
        entries[slot] = cnm_zcrx_rqe(off: offset, len: length, pad: 0)
        localTail &+= 1
        return true
    }

    /// Makes written entries visible to the kernel (store-release of the tail).
    public mutating func publish() {
        cnm_zcrx_store_release(tail, localTail)
    }

    /// The entry at ring position `index` (for tests and diagnostics).
    public func entry(at index: UInt32) -> cnm_zcrx_rqe { entries[Int(index & (count - 1))] }
}

/// What a zcrx completion says, and how it becomes a `Fragment` and back.
public enum ZcrxCompletion {
    /// Bits of `off` below the area id.
    public static let offsetMask: UInt64 = (1 << UInt64(CNM_IORING_ZCRX_AREA_SHIFT)) - 1

    /// Turns a RECV_ZC completion (a 32-byte CQE whose second half is
    /// `struct io_uring_zcrx_cqe`: `off` first) into a fragment: the offset inside the
    /// area, the length, the area id as `regionID`, and the buffer index
    /// (offset >> `bufferShift`) as the token. Returns nil for a completion that carries no
    /// data (res <= 0).
    public static func fragment(_ cqe: BigCompletion, bufferShift: UInt32) -> Fragment? {
        guard cqe.completion.result > 0 else { return nil }
        let off = cqe.extra.0  // io_uring_zcrx_cqe.off
        let areaOffset = off & offsetMask
        let area = off >> UInt64(CNM_IORING_ZCRX_AREA_SHIFT)
        return Fragment(regionOffset: areaOffset, length: Int(cqe.completion.result),
                        token: UInt32(truncatingIfNeeded: areaOffset >> UInt64(bufferShift)), regionID: UInt32(area))
    }

    /// The refill entry offset that gives back buffer `token` of the area whose
    /// registration returned `areaToken`.
    public static func refillOffset(token: UInt32, bufferShift: UInt32, areaToken: UInt64) -> UInt64 {
        (UInt64(token) << UInt64(bufferShift)) | areaToken
    }
}
