import CNetmemLinux
import Glibc
import NetmemDevice
import Synchronization
import SystemPackage

/// The memory a zcrx queue receives into.
public enum ZcrxArea: Sendable {
    /// Anonymous host memory of `bytes` (page-aligned), readable by the CPU.
    case host(bytes: Int)
    /// A dma-buf (a region's fd) of `bytes`; the CPU may not read it.
    case dmabuf(fd: Int32, bytes: Int)

    /// A device-memory region's dma-buf as the area.
    public static func region(_ region: DeviceMemoryRegion) throws(ZcrxError) -> ZcrxArea {
        guard let fd = region.fileDescriptor else {
            throw .invalidConfiguration("region \(region.id) has no file descriptor to register as a zcrx area")
        }
        return .dmabuf(fd: fd.rawValue, bytes: region.size)
    }
}

/// What one reap of a zcrx queue produced.
public enum ZcrxEvent: Sendable, Equatable {
    /// Payload landed in the area; give its token back with `dontNeed`.
    case fragment(Fragment, userData: UInt64)
    /// The multishot receive ended (EOF when `error` is nil); submit another to go on.
    case ended(userData: UInt64, error: Errno?)
}

/// An io_uring zero-copy receive interface queue: an RX queue of a NIC whose payload the
/// kernel lands straight in our area, reported by RECV_ZC completions (32-byte CQEs) and
/// given back through the refill ring.
///
/// Owns its own small ring set up with SINGLE_ISSUER | DEFER_TASKRUN | CQE32, which zcrx
/// requires (the shared `IOURing` has no CQE32 option), the area and the refill region;
/// all are released on deinit. Mirrors liburing's zcrx example flow:
/// `io_uring_register_ifq` → `RECV_ZC` multishot → CQE → refill ring.
// @unchecked: the ring memory is touched by the receiving thread only; the refill ring,
// which token returns write from any thread, is behind a lock.
public final class ZcrxQueue: TokenReturning, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var interface: String
        public var queue: UInt32
        public var area: ZcrxArea
        /// Refill ring entries (a power of two).
        public var refillEntries: UInt32
        /// Submission entries of the private ring.
        public var ringEntries: UInt32

        public init(interface: String, queue: UInt32, area: ZcrxArea = .host(bytes: 16 << 20),
                    refillEntries: UInt32 = 4096, ringEntries: UInt32 = 64) {
            self.interface = interface
            self.queue = queue
            self.area = area
            self.refillEntries = refillEntries
            self.ringEntries = ringEntries
        }
    }

    public let configuration: Configuration
    /// The kernel's id for this interface queue (`zcrx_id`), named in RECV_ZC SQEs.
    public let zcrxID: UInt32
    /// The area token the kernel returned (`rq_area_token`): the area id in the top bits.
    public let areaToken: UInt64
    /// log2 of the receive buffer size (the kernel's `niov_shift`; page size by default).
    public let bufferShift: UInt32
    private let resources: ZcrxResources
    private let refill: Mutex<ZcrxRefillRing>

    /// Sets up the ring, maps the area and the refill region, and registers the queue.
    /// Mirrors `IORING_REGISTER_ZCRX_IFQ`. On NICs without zcrx support (and on lo or
    /// veth, always) the kernel refuses and the error says the driver lacks support.
    public init(_ configuration: Configuration) throws(ZcrxError) {
        let c = configuration
        guard c.refillEntries > 0, c.refillEntries & (c.refillEntries - 1) == 0 else {
            throw .invalidConfiguration("refill entries \(c.refillEntries) must be a power of two")
        }
        let ifindex = if_nametoindex(c.interface)
        guard ifindex != 0 else { throw .noSuchInterface(c.interface) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let res = ZcrxResources()
        try res.setupRing(entries: c.ringEntries)

        var areaReg = cnm_zcrx_area_reg()
        switch c.area {
        case let .host(bytes):
            guard bytes > 0, bytes % page == 0 else {
                throw .invalidConfiguration("a host area must be a positive multiple of the page size (\(page)), not \(bytes)")
            }
            let p = try res.map(bytes, what: "zcrx area")
            res.area = (p, bytes)
            areaReg.addr = UInt64(UInt(bitPattern: p))
            areaReg.len = UInt64(bytes)
        case let .dmabuf(fd, bytes):
            areaReg.len = UInt64(bytes)
            areaReg.flags = UInt32(CNM_ZC_IORING_ZCRX_AREA_DMABUF)
            areaReg.dmabuf_fd = UInt32(bitPattern: fd)
        }
        let refillBytes = ZcrxRefillRing.regionSize(entries: c.refillEntries, pageSize: page)
        let refillBase = try res.map(refillBytes, what: "zcrx refill ring")
        res.refill = (refillBase, refillBytes)
        var region = cnm_uring_region_desc()
        region.user_addr = UInt64(UInt(bitPattern: refillBase))
        region.size = UInt64(refillBytes)
        region.flags = UInt32(CNM_ZC_IORING_MEM_REGION_TYPE_USER)

        var reg = cnm_zcrx_ifq_reg()
        reg.if_idx = ifindex
        reg.if_rxq = c.queue
        reg.rq_entries = c.refillEntries
        let r = withUnsafeMutablePointer(to: &areaReg) { areaPtr in
            withUnsafeMutablePointer(to: &region) { regionPtr in
                reg.area_ptr = UInt64(UInt(bitPattern: areaPtr))
                reg.region_ptr = UInt64(UInt(bitPattern: regionPtr))
                return cnm_zc_uring_register(res.ringFD, UInt32(CNM_ZC_IORING_REGISTER_ZCRX_IFQ), &reg, 1)
            }
        }
        guard r >= 0 else {
            let e = Errno(rawValue: -r)
            throw .registrationRefused(interface: c.interface, queue: c.queue, errno: e,
                                       reason: ZcrxError.explainRegistration(e, interface: c.interface))
        }
        self.configuration = c
        self.resources = res
        zcrxID = reg.zcrx_id
        areaToken = areaReg.rq_area_token
        bufferShift = reg.rx_buf_len > 0 ? UInt32(reg.rx_buf_len.trailingZeroBitCount) : UInt32(page.trailingZeroBitCount)
        refill = Mutex(ZcrxRefillRing(base: refillBase, offsets: reg.offsets, count: c.refillEntries))
    }

    /// Starts a multishot zero-copy receive on `socket` (a TCP socket whose flow the NIC
    /// steers to this queue). Mirrors `io_uring_prep_rw(IORING_OP_RECV_ZC)` with
    /// `IORING_RECV_MULTISHOT` and the queue's `zcrx_ifq_idx`.
    public func startReceive(socket: FileDescriptor, userData: UInt64) throws(ZcrxError) {
        var sqe = cnm_zc_sqe()
        sqe.opcode = UInt8(CNM_ZC_IORING_OP_RECV_ZC)
        sqe.fd = socket.rawValue
        sqe.ioprio = UInt16(CNM_ZC_IORING_RECV_MULTISHOT)
        sqe.zcrx_ifq_idx = zcrxID
        sqe.user_data = userData
        try resources.submit(sqe)
    }

    /// Waits for at least `minimum` completions and turns them into events.
    public func reap(minimum: Int = 1, maximum: Int = 256) throws(ZcrxError) -> [ZcrxEvent] {
        var events: [ZcrxEvent] = []
        try resources.reap(minimum: minimum, maximum: maximum) { cqe in
            if let f = ZcrxCompletion.fragment(cqe, bufferShift: bufferShift) {
                events.append(.fragment(f, userData: cqe.user_data))
            }
            if cqe.flags & UInt32(CNM_ZC_IORING_CQE_F_MORE) == 0 {
                events.append(.ended(userData: cqe.user_data, error: cqe.res < 0 ? Errno(rawValue: -cqe.res) : nil))
            }
        }
        return events
    }

    /// The bytes of a fragment of a host area (nil for a dma-buf area).
    public func bytes(of fragment: Fragment) -> UnsafeRawBufferPointer? {
        guard let (base, size) = resources.area, fragment.regionOffset + UInt64(fragment.length) <= UInt64(size) else { return nil }
        return UnsafeRawBufferPointer(start: base + Int(fragment.regionOffset), count: fragment.length)
    }

    /// Gives buffers back through the refill ring (one entry per token) and publishes.
    /// Throws when the ring has no room; entries written before stay written.
    public func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        let (shift, token) = (bufferShift, areaToken)
        let result: Result<Int, TokenError> = refill.withLockChecked { refill in
            var n = 0
            defer { refill.publish() }
            for r in ranges {
                for i in 0..<r.count {
                    let off = ZcrxCompletion.refillOffset(token: r.start &+ i, bufferShift: shift, areaToken: token)
                    guard refill.push(offset: off, length: 1 << shift) else {
                        return .failure(.kernel("the zcrx refill ring is full after \(n) returns; reap and retry"))
                    }
                    n += 1
                }
            }
            return .success(n)
        }
        return try result.get()
    }
}

/// The ring, mappings and fd of a zcrx queue; whatever was acquired is released on
/// deinit, also when setup fails halfway.
final class ZcrxResources {
    var ringFD: Int32 = -1
    var params = cnm_zc_uring_params()
    var sqRing: (UnsafeMutableRawPointer, Int)?
    var cqRing: (UnsafeMutableRawPointer, Int)?
    var sqes: (UnsafeMutableRawPointer, Int)?
    var area: (UnsafeMutableRawPointer, Int)?
    var refill: (UnsafeMutableRawPointer, Int)?

    deinit {
        for m in [sqRing, cqRing, sqes, area, refill] {
            if let (p, n) = m { munmap(p, n) }
        }
        if ringFD >= 0 { close(ringFD) }
    }

    func map(_ bytes: Int, what: String, fd: Int32 = -1, offset: Int = 0) throws(ZcrxError) -> UnsafeMutableRawPointer {
        var err: Int32 = 0
        let flags = fd < 0 ? (MAP_PRIVATE | MAP_ANONYMOUS) : (MAP_SHARED | CNM_MAP_POPULATE)
        guard let p = cnm_mmap(nil, bytes, PROT_READ | PROT_WRITE, flags, fd, off_t(offset), &err) else {
            throw .mapFailed(what: what, bytes: bytes, errno: Errno(rawValue: err))
        }
        return p
    }

    /// Mirrors `io_uring_queue_init_params` with SINGLE_ISSUER | DEFER_TASKRUN | CQE32.
    func setupRing(entries: UInt32) throws(ZcrxError) {
        params.flags = CNM_ZC_IORING_SETUP_SINGLE_ISSUER | CNM_ZC_IORING_SETUP_DEFER_TASKRUN | CNM_ZC_IORING_SETUP_CQE32
        let fd = cnm_zc_uring_setup(entries, &params)
        guard fd >= 0 else { throw .ringSetup(Errno(rawValue: -fd)) }
        ringFD = fd
        let sqBytes = Int(params.sq_off.array) + Int(params.sq_entries) * 4
        let cqBytes = Int(params.cq_off.cqes) + Int(params.cq_entries) * MemoryLayout<cnm_zc_cqe32>.size
        let single = params.features & 1 != 0  // IORING_FEAT_SINGLE_MMAP
        let sq = try map(single ? max(sqBytes, cqBytes) : sqBytes, what: "SQ ring", fd: fd, offset: Int(CNM_ZC_IORING_OFF_SQ_RING))
        sqRing = (sq, single ? max(sqBytes, cqBytes) : sqBytes)
        if !single {
            cqRing = (try map(cqBytes, what: "CQ ring", fd: fd, offset: Int(CNM_ZC_IORING_OFF_CQ_RING)), cqBytes)
        }
        let sqeBytes = Int(params.sq_entries) * MemoryLayout<cnm_zc_sqe>.size
        sqes = (try map(sqeBytes, what: "SQEs", fd: fd, offset: Int(CNM_ZC_IORING_OFF_SQES)), sqeBytes)
    }

    private func u32(_ base: UnsafeMutableRawPointer, _ off: UInt32) -> UnsafeMutablePointer<UInt32> {
        (base + Int(off)).assumingMemoryBound(to: UInt32.self)
    }

    /// Writes one SQE and submits it.
    func submit(_ sqe: cnm_zc_sqe) throws(ZcrxError) {
        guard let (sq, _) = sqRing, let (sqeBase, _) = sqes else { preconditionFailure("zcrx ring used before setup") }
        let tailPtr = u32(sq, params.sq_off.tail)
        let mask = u32(sq, params.sq_off.ring_mask).pointee
        let tail = tailPtr.pointee
        let index = tail & mask
        sqeBase.assumingMemoryBound(to: cnm_zc_sqe.self)[Int(index)] = sqe
        u32(sq, params.sq_off.array)[Int(index)] = index
        cnm_zc_store_release(tailPtr, tail &+ 1)
        let r = cnm_zc_uring_enter(ringFD, 1, 0, 0)
        guard r >= 0 else { throw .system("io_uring_enter(submit RECV_ZC)", Errno(rawValue: -r)) }
    }

    /// Waits for `minimum` completions and hands each CQE32 to `body`.
    func reap(minimum: Int, maximum: Int, _ body: (cnm_zc_cqe32) -> Void) throws(ZcrxError) {
        guard let (sq, _) = sqRing else { preconditionFailure("zcrx ring used before setup") }
        let cq = cqRing?.0 ?? sq
        let r = cnm_zc_uring_enter(ringFD, 0, UInt32(minimum), CNM_ZC_IORING_ENTER_GETEVENTS)
        guard r >= 0 else { throw .system("io_uring_enter(GETEVENTS)", Errno(rawValue: -r)) }
        let headPtr = u32(cq, params.cq_off.head)
        let tail = cnm_zc_load_acquire(u32(cq, params.cq_off.tail))
        let mask = u32(cq, params.cq_off.ring_mask).pointee
        let cqes = (cq + Int(params.cq_off.cqes)).assumingMemoryBound(to: cnm_zc_cqe32.self)
        var head = headPtr.pointee
        var n = 0
        while head != tail && n < maximum {
            body(cqes[Int(head & mask)])
            head &+= 1
            n += 1
        }
        cnm_zc_store_release(headPtr, head)
    }
}
