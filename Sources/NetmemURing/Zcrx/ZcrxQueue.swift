import CNetmemLinux
import Glibc
import Netmem
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
/// Runs on its own `IOURing` set up with SINGLE_ISSUER | DEFER_TASKRUN | CQE32, which zcrx
/// requires, and owns the area and the refill region; all are released on deinit.
/// Mirrors liburing's zcrx example flow: `io_uring_register_ifq` → `RECV_ZC` multishot →
/// CQE → refill ring.
public final class ZcrxQueue: TokenReturning, @unchecked Sendable {
    // @unchecked: the ring is touched by the receiving thread only (startReceive, reap); the
    // refill ring, which token returns write from any thread, is behind a lock.
    /// Which NIC queue to register and the memory and ring sizes it gets.
    public struct Configuration: Sendable {
        /// The network interface's name (`if_nametoindex` must know it).
        public var interface: String
        /// The index of the interface's RX queue to receive on.
        public var queue: UInt32
        /// The memory payload lands in; 16 MiB of host memory by default.
        public var area: ZcrxArea
        /// Refill ring entries (a power of two).
        public var refillEntries: UInt32
        /// Submission entries of the queue's io_uring.
        public var ringEntries: UInt32

        /// A configuration; `ZcrxQueue.init` checks that `refillEntries` is a power of two.
        public init(interface: String, queue: UInt32, area: ZcrxArea = .host(bytes: 16 << 20),
                    refillEntries: UInt32 = 4096, ringEntries: UInt32 = 64) {
            self.interface = interface
            self.queue = queue
            self.area = area
            self.refillEntries = refillEntries
            self.ringEntries = ringEntries
        }
    }

    /// The configuration the queue was registered with.
    public let configuration: Configuration
    /// The kernel's id for this interface queue (`zcrx_id`), named in RECV_ZC SQEs.
    public let zcrxID: UInt32
    /// The area token the kernel returned (`rq_area_token`): the area id in the top bits.
    public let areaToken: UInt64
    /// log2 of the receive buffer size (the kernel's `niov_shift`; page size by default).
    public let bufferShift: UInt32
    private var ring: IOURing
    /// The host area's bytes (nil for a dma-buf area, which the CPU does not map).
    private let hostArea: UnsafeMutableRawBufferPointer?
    /// The host area's mapping (owns `hostArea`).
    private let areaMapping: MappedMemory?
    /// The refill region the kernel and `refill` share.
    private let refillRegion: MappedMemory
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
        var areaReg = cnm_zcrx_area_reg()
        if case let .host(bytes) = c.area, bytes <= 0 || bytes % page != 0 {
            throw .invalidConfiguration("a host area must be a positive multiple of the page size (\(page)), not \(bytes)")
        }
        let ring: IOURing
        do throws(URingError) {
            ring = try IOURing(IOURing.Options(entries: c.ringEntries, requiresDeferTaskRun: true, bigCompletions: true))
        } catch {
            throw .ringSetup(error)
        }

        let areaMapping: MappedMemory?
        let hostArea: UnsafeMutableRawBufferPointer?
        switch c.area {
        case let .host(bytes):
            let m = try Self.map(bytes, what: "zcrx area")
            hostArea = UnsafeMutableRawBufferPointer(start: m.base, count: m.length)
            areaReg.addr = UInt64(UInt(bitPattern: m.base))
            areaReg.len = UInt64(bytes)
            areaMapping = consume m
        case let .dmabuf(fd, bytes):
            areaReg.len = UInt64(bytes)
            areaReg.flags = UInt32(CNM_IORING_ZCRX_AREA_DMABUF)
            areaReg.dmabuf_fd = UInt32(bitPattern: fd)
            hostArea = nil
            areaMapping = nil
        }
        let refillRegion = try Self.map(ZcrxRefillRing.regionSize(entries: c.refillEntries, pageSize: page),
                                        what: "zcrx refill ring")
        var region = cnm_io_uring_region_desc()
        region.user_addr = UInt64(UInt(bitPattern: refillRegion.base))
        region.size = UInt64(refillRegion.length)
        region.flags = UInt32(CNM_IORING_MEM_REGION_TYPE_USER)

        var reg = cnm_zcrx_ifq_reg()
        reg.if_idx = ifindex
        reg.if_rxq = c.queue
        reg.rq_entries = c.refillEntries
        let ringFD = ring.fileDescriptor.rawValue
        let r = withUnsafeMutablePointer(to: &areaReg) { areaPtr in
            withUnsafeMutablePointer(to: &region) { regionPtr in
                reg.area_ptr = UInt64(UInt(bitPattern: areaPtr))
                reg.region_ptr = UInt64(UInt(bitPattern: regionPtr))
                return cnm_io_uring_register(ringFD, UInt32(CNM_IORING_REGISTER_ZCRX_IFQ), &reg, 1)
            }
        }
        let refused: Errno? = r < 0 ? Errno(rawValue: -r) : nil
        if let e = refused {
            throw .registrationRefused(interface: c.interface, queue: c.queue, errno: e,
                                       reason: ZcrxError.explainRegistration(e, interface: c.interface))
        }
        self.configuration = c
        zcrxID = reg.zcrx_id
        areaToken = areaReg.rq_area_token
        bufferShift = reg.rx_buf_len > 0 ? UInt32(reg.rx_buf_len.trailingZeroBitCount) : UInt32(page.trailingZeroBitCount)
        refill = Mutex(ZcrxRefillRing(base: refillRegion.base, offsets: reg.offsets, count: c.refillEntries))
        self.ring = ring
        self.hostArea = hostArea
        self.areaMapping = areaMapping
        self.refillRegion = refillRegion
    }

    private static func map(_ bytes: Int, what: String) throws(ZcrxError) -> MappedMemory {
        do throws(NetmemError) {
            return try MappedMemory(length: bytes, flags: MAP_PRIVATE | MAP_ANONYMOUS)
        } catch {
            guard case let .mapFailed(_, e) = error else { preconditionFailure("mmap threw \(error)") }
            throw .mapFailed(what: what, bytes: bytes, errno: e)
        }
    }

    /// Starts a multishot zero-copy receive on `socket` (a TCP socket whose flow the NIC
    /// steers to this queue). Mirrors `io_uring_prep_rw(IORING_OP_RECV_ZC)` with
    /// `IORING_RECV_MULTISHOT` and the queue's `zcrx_ifq_idx`.
    public func startReceive(socket: FileDescriptor, userData: UInt64) throws(ZcrxError) {
        let id = zcrxID
        do throws(URingError) {
            try ring.prepareRaw { sqe in
                sqe.opcode = UInt8(CNM_IORING_OP_RECV_ZC)
                sqe.fd = socket.rawValue
                sqe.ioprio = UInt16(CNM_IORING_RECV_MULTISHOT)
                sqe.file_index = Int32(bitPattern: id)  // zcrx_ifq_idx
                sqe.user_data = userData
            }
            try ring.submit()
        } catch {
            throw .ring(error)
        }
    }

    /// Waits for at least `minimum` completions and turns them into events.
    public func reap(minimum: Int = 1, maximum: Int = 256) throws(ZcrxError) -> [ZcrxEvent] {
        do throws(URingError) {
            try ring.submitAndWait(minimumCompletions: minimum, timeout: nil)
        } catch {
            throw .ring(error)
        }
        var events: [ZcrxEvent] = []
        let shift = bufferShift
        ring.reapBig(maximum: maximum) { cqe in
            if let f = ZcrxCompletion.fragment(cqe, bufferShift: shift) {
                events.append(.fragment(f, userData: cqe.completion.userData))
            }
            if !cqe.completion.hasMore {
                events.append(.ended(userData: cqe.completion.userData, error: cqe.completion.error))
            }
        }
        return events
    }

    /// The bytes of a fragment of a host area (nil for a dma-buf area).
    public func bytes(of fragment: Fragment) -> UnsafeRawBufferPointer? {
        guard let area = hostArea, fragment.regionOffset + UInt64(fragment.length) <= UInt64(area.count) else { return nil }
        return UnsafeRawBufferPointer(rebasing: area[Int(fragment.regionOffset)..<Int(fragment.regionOffset) + fragment.length])
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
