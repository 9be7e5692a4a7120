import CNetmemLinux
import Glibc
import SystemPackage

/// One mapped AF_XDP ring (fill, completion, RX or TX): the shared producer and consumer
/// words, the flags word and the descriptor array. All pointer arithmetic on ring memory
/// lives here. A producer ring (fill, TX) is written by us and read by the kernel; a
/// consumer ring (RX, completion) the other way round. Indices run freely and wrap at
/// 2^32; `mask` picks the slot. The mapping itself belongs to `XSKResources`, which
/// unmaps it (the socket is released only when its last ring is unmapped).
struct XDPRing {
    let producer: UnsafeMutablePointer<UInt32>
    let consumer: UnsafeMutablePointer<UInt32>
    let flags: UnsafeMutablePointer<UInt32>
    let descriptors: UnsafeMutableRawPointer
    let size: UInt32
    let mask: UInt32
    /// Our copy of the index we own (producer of a producer ring, consumer of a consumer ring).
    var cachedProducer: UInt32
    var cachedConsumer: UInt32

    /// Maps the ring at `pageOffset` of the socket and records the mapping in
    /// `resources`. Mirrors `mmap(2)` of an XDP ring.
    init(resources: XSKResources, fd: Int32, offsets: cnm_xdp_ring_offset, pageOffset: UInt64, size: Int, elementSize: Int,
         name: String) throws(XDPError) {
        let length = Int(offsets.desc) + size * elementSize
        var err: Int32 = 0
        guard let p = cnm_mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | CNM_MAP_POPULATE, fd,
                               off_t(Int64(bitPattern: pageOffset)), &err) else {
            throw .systemCall("mmap of the \(name) ring", Errno(rawValue: err))
        }
        resources.mappings.append((p, length))
        producer = (p + Int(offsets.producer)).assumingMemoryBound(to: UInt32.self)
        consumer = (p + Int(offsets.consumer)).assumingMemoryBound(to: UInt32.self)
        flags = (p + Int(offsets.flags)).assumingMemoryBound(to: UInt32.self)
        descriptors = p + Int(offsets.desc)
        self.size = UInt32(size)
        mask = UInt32(size - 1)
        cachedProducer = cnm_xdp_load_relaxed(producer)
        cachedConsumer = cnm_xdp_load_relaxed(consumer)
    }

    // MARK: Producer side (fill, TX)

    /// Free slots, reloading the kernel's consumer index only when the cached view says
    /// fewer than `wanted` are free. Mirrors `xsk_prod_nb_free`.
    @inline(__always)
    mutating func freeSlots(wanted: UInt32) -> UInt32 {
        var free = size &- (cachedProducer &- cachedConsumer)
        if free >= wanted { return free }
        cachedConsumer = cnm_xdp_load_acquire(consumer)
        free = size &- (cachedProducer &- cachedConsumer)
        return free
    }

    /// The address slot `i` (a fill or completion ring holds UMEM addresses).
    @inline(__always)
    func address(at index: UInt32) -> UnsafeMutablePointer<UInt64> {
        (descriptors + Int(index & mask) &* 8).assumingMemoryBound(to: UInt64.self)
    }

    /// The descriptor slot `i` (an RX or TX ring holds `struct xdp_desc`).
    @inline(__always)
    func descriptor(at index: UInt32) -> UnsafeMutablePointer<cnm_xdp_desc> {
        (descriptors + Int(index & mask) &* 16).assumingMemoryBound(to: cnm_xdp_desc.self)
    }

    /// Publishes `count` slots written after the current producer index. Mirrors
    /// `xsk_ring_prod__submit`.
    @inline(__always)
    mutating func submit(_ count: UInt32) {
        cachedProducer &+= count
        cnm_xdp_store_release(producer, cachedProducer)
    }

    // MARK: Consumer side (RX, completion)

    /// Entries ready to read (at most `limit`), starting at `cachedConsumer`. Mirrors
    /// `xsk_ring_cons__peek`.
    @inline(__always)
    mutating func available(limit: UInt32) -> UInt32 {
        var n = cachedProducer &- cachedConsumer
        if n == 0 {
            cachedProducer = cnm_xdp_load_acquire(producer)
            n = cachedProducer &- cachedConsumer
        }
        return Swift.min(n, limit)
    }

    /// Hands `count` read entries back to the kernel. Mirrors `xsk_ring_cons__release`.
    @inline(__always)
    mutating func release(_ count: UInt32) {
        cachedConsumer &+= count
        cnm_xdp_store_release(consumer, cachedConsumer)
    }

    /// Whether the kernel asked to be kicked (`XDP_RING_NEED_WAKEUP`).
    @inline(__always)
    var needsWakeup: Bool { cnm_xdp_load_relaxed(flags) & UInt32(CNM_XDP_RING_NEED_WAKEUP) != 0 }

    /// Entries the kernel has not consumed yet (producer rings) or we have not read yet
    /// (consumer rings), from the shared words.
    var pending: UInt32 { cnm_xdp_load_acquire(producer) &- cnm_xdp_load_acquire(consumer) }
}

/// The kernel objects behind one AF_XDP socket: its descriptor, its ring mappings and
/// the redirect program. `release()` unmaps the rings and closes the descriptor (the
/// kernel releases the socket, and stops writing into the UMEM, once both are gone), then
/// detaches the program; `deinit` does the same for a socket whose setup failed half-way.
final class XSKResources {
    var fd: Int32 = -1
    var mappings: [(UnsafeMutableRawPointer, Int)] = []
    var program: XDPProgram? = nil

    func release() {
        for (p, n) in mappings { munmap(p, n) }
        mappings = []
        if fd >= 0 { close(fd) }
        fd = -1
        program = nil
    }

    deinit { release() }
}
