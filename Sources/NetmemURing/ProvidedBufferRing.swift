import CNetmemLinux
import Glibc
import Netmem
import SystemPackage

/// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the ring of buffers the kernel
/// picks from when a receive with buffer selection completes. Each buffer is one pool
/// chunk; the buffer id (bid) names it in completions. Mirrors liburing's
/// `io_uring_buf_ring` helpers (`io_uring_buf_ring_add`, `_advance`), written from the ABI.
///
/// With incremental mode (`IOU_PBUF_RING_INC`) the kernel consumes a buffer piece by
/// piece: each completion uses the next bytes of the same buffer and says
/// `F_BUF_MORE` while it keeps the buffer. `consume(bid:length:)` tracks where each
/// piece starts.
///
/// Owned by the RX thread. A bid is either free (no chunk) or in the kernel's ring;
/// `provide` takes a free bid, `finish` frees it when the kernel is done with it (the
/// chunk's reference then belongs to whoever received its bytes).
public struct ProvidedBufferRing: ~Copyable {
    /// The buffer group id the ring is registered as (`bgid`); receives that select buffers
    /// from this group name it.
    public let group: UInt16
    /// Ring slots (a power of two, ≥ bufferCount).
    public let entries: Int
    /// Buffer ids 0..<bufferCount.
    public let bufferCount: Int
    /// Bytes per buffer (the pool's chunk size).
    public let bufferLength: Int
    /// Whether the kernel consumes buffers incrementally.
    public let incremental: Bool

    private let ringFD: Int32
    private let ringMemory: UnsafeMutableRawPointer
    private let ringBytes: Int
    private var tail: UInt16 = 0
    private var published: UInt16 = 0
    private let mask: UInt16
    /// Per bid: the chunk (rawValue 0 when free), its CPU address, the next offset (incremental).
    private let chunks: UnsafeMutablePointer<NetmemRef>
    private let addresses: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let offsets: UnsafeMutablePointer<UInt32>
    /// Ring position of each bid, and bid at each ring position (for bundles).
    private let positionOfBid: UnsafeMutablePointer<UInt16>
    private let bidAtPosition: UnsafeMutablePointer<UInt16>
    private let freeBids: UnsafeMutablePointer<UInt16>
    private var freeCount: Int
    /// Per bid: whether the kernel's ring still holds it.
    private let inKernel: UnsafeMutablePointer<Bool>
    private var registered = true

    /// Buffers now in the kernel's ring (provided and not yet fully consumed).
    public private(set) var buffersInRing = 0
    /// Bids that hold a chunk.
    public var buffersOut: Int { bufferCount - freeCount }

    /// Mirrors `io_uring_setup_buf_ring`: maps ring memory and registers it as `group`.
    public init(ring: borrowing IOURing, group: UInt16, bufferCount: Int, bufferLength: Int,
                incremental: Bool) throws(URingError) {
        guard bufferCount > 0, bufferCount <= 32768 else {
            throw .invalidConfiguration("provided-buffer ring of \(bufferCount) buffers: must be 1 to 32768")
        }
        guard bufferLength > 0, bufferLength <= Int(UInt32.max) else {
            throw .invalidConfiguration("buffer length \(bufferLength)")
        }
        var n = 1
        while n < bufferCount { n <<= 1 }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = (n * MemoryLayout<cnm_io_uring_buf>.stride + page - 1) / page * page
        guard let mem = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0),
              mem != MAP_FAILED else {
            throw .systemCall("mmap of a provided-buffer ring (\(n) entries)", Errno(rawValue: errno))
        }
        do {
            try ring.registerBufferRing(ringAddress: mem, entries: UInt32(n), group: group,
                                        flags: incremental ? UInt16(CNM_IOU_PBUF_RING_INC) : 0)
        } catch {
            munmap(mem, bytes)
            if incremental, case .systemCall(_, .invalidArgument) = error {
                throw .unsupported("incremental provided-buffer rings (IOU_PBUF_RING_INC, Linux 6.12+)")
            }
            throw error
        }
        entries = n
        self.group = group
        self.bufferCount = bufferCount
        self.bufferLength = bufferLength
        self.incremental = incremental
        mask = UInt16(n - 1)
        ringBytes = bytes
        ringFD = ring.fileDescriptor.rawValue
        ringMemory = mem
        chunks = .allocate(capacity: bufferCount)
        chunks.initialize(repeating: NetmemRef(rawValue: 0), count: bufferCount)
        addresses = .allocate(capacity: bufferCount)
        addresses.initialize(repeating: nil, count: bufferCount)
        offsets = .allocate(capacity: bufferCount)
        offsets.initialize(repeating: 0, count: bufferCount)
        positionOfBid = .allocate(capacity: bufferCount)
        positionOfBid.initialize(repeating: 0, count: bufferCount)
        bidAtPosition = .allocate(capacity: n)
        bidAtPosition.initialize(repeating: 0, count: n)
        freeBids = .allocate(capacity: bufferCount)
        for i in 0..<bufferCount { (freeBids + i).initialize(to: UInt16(bufferCount - 1 - i)) }
        freeCount = bufferCount
        inKernel = .allocate(capacity: bufferCount)
        inKernel.initialize(repeating: false, count: bufferCount)
    }

    deinit {
        if registered {
            var reg = cnm_io_uring_buf_reg()
            reg.bgid = group
            _ = cnm_io_uring_register(ringFD, UInt32(CNM_IORING_UNREGISTER_PBUF_RING), &reg, 1)
        }
        munmap(ringMemory, ringBytes)
        inKernel.deallocate()
        chunks.deallocate()
        addresses.deallocate()
        offsets.deallocate()
        positionOfBid.deallocate()
        bidAtPosition.deallocate()
        freeBids.deallocate()
    }

    /// Removes the ring from the kernel (`io_uring_unregister_buf_ring`); call it before
    /// the io_uring closes. Idempotent; `deinit` does it too.
    public mutating func unregister() {
        guard registered else { return }
        registered = false
        var reg = cnm_io_uring_buf_reg()
        reg.bgid = group
        _ = cnm_io_uring_register(ringFD, UInt32(CNM_IORING_UNREGISTER_PBUF_RING), &reg, 1)
    }

    /// Whether the kernel's ring still holds `bid` (provided and not fully consumed).
    public func isInKernel(_ bid: UInt16) -> Bool { inKernel[Int(checkedBid(bid))] }

    /// Whether a bid is free to take a chunk.
    public var hasFreeBid: Bool { freeCount > 0 }

    /// Puts `ref`'s chunk (CPU address `address`) into the ring under a free bid; it
    /// reaches the kernel at the next `publish()`. Returns the bid, or nil when every
    /// bid is out. Mirrors `io_uring_buf_ring_add`.
    public mutating func provide(_ ref: NetmemRef, address: UnsafeMutableRawPointer) -> UInt16? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        let bid = freeBids[freeCount]
        chunks[Int(bid)] = ref
        addresses[Int(bid)] = address
        offsets[Int(bid)] = 0
        inKernel[Int(bid)] = true
        let pos = tail
        cnm_pbuf_ring_put(ringMemory, mask, pos, UInt64(UInt(bitPattern: address)), UInt32(bufferLength), bid)
        positionOfBid[Int(bid)] = pos
        bidAtPosition[Int(pos & mask)] = bid
        tail &+= 1
        buffersInRing += 1
        return bid
    }

    /// Makes every buffer added since the last call visible to the kernel. Mirrors
    /// `io_uring_buf_ring_advance`.
    public mutating func publish() {
        guard published != tail else { return }
        cnm_pbuf_ring_publish(ringMemory, tail)
        published = tail
    }

    /// The chunk behind `bid` (must be out).
    public func chunk(_ bid: UInt16) -> NetmemRef {
        let ref = chunks[Int(checkedBid(bid))]
        precondition(ref.rawValue != 0, "buffer id \(bid) of group \(group) holds no chunk")
        return ref
    }

    /// The CPU address of `bid`'s chunk.
    public func address(_ bid: UInt16) -> UnsafeMutableRawPointer {
        addresses[Int(checkedBid(bid))]!
    }

    /// Records that a completion put `length` bytes into `bid` and returns the offset in
    /// the chunk where they start (always 0 without incremental mode).
    public mutating func consume(bid: UInt16, length: Int) -> Int {
        let i = Int(checkedBid(bid))
        let start = Int(offsets[i])
        guard start + length <= bufferLength else {
            preconditionFailure("completion of \(length) bytes at offset \(start) overruns buffer \(bid) (\(bufferLength) bytes)")
        }
        offsets[i] = UInt32(start + length)
        return start
    }

    /// The kernel is done with `bid` (it left the kernel's ring).
    public mutating func kernelFinished(bid: UInt16) {
        precondition(inKernel[Int(checkedBid(bid))], "buffer \(bid) left the kernel's ring twice")
        inKernel[Int(bid)] = false
        buffersInRing -= 1
    }

    /// The bid `index` places after `first` in ring order (bundles use consecutive ring
    /// entries).
    public func bid(following first: UInt16, by index: Int) -> UInt16 {
        let pos = positionOfBid[Int(checkedBid(first))] &+ UInt16(truncatingIfNeeded: index)
        return bidAtPosition[Int(pos & mask)]
    }

    /// The kernel is done with `bid`: it leaves the kernel's ring and is free for a new
    /// chunk. Returns the chunk it held.
    public mutating func finish(_ bid: UInt16) -> NetmemRef {
        kernelFinished(bid: bid)
        return reclaim(bid)
    }

    /// Frees `bid` and returns its chunk (to give back to the pool).
    public mutating func reclaim(_ bid: UInt16) -> NetmemRef {
        let i = Int(checkedBid(bid))
        let ref = chunks[i]
        precondition(ref.rawValue != 0, "buffer id \(bid) of group \(group) reclaimed twice")
        precondition(!inKernel[i], "buffer id \(bid) reclaimed while the kernel still holds it")
        chunks[i] = NetmemRef(rawValue: 0)
        addresses[i] = nil
        freeBids[freeCount] = bid
        freeCount += 1
        return ref
    }

    private func checkedBid(_ bid: UInt16) -> UInt16 {
        precondition(Int(bid) < bufferCount, "buffer id \(bid) outside group \(group) (\(bufferCount) buffers)")
        return bid
    }
}
