import CNetmemLinux
import Glibc
import Netmem
import NetmemDevice
import SystemPackage

/// An AF_XDP socket bound to one queue of one interface, with a UMEM that is a Netmem
/// area: the frames are chunks of a `HostPageProvider`, handed out and taken back by a
/// `PagePool`. The fill ring is refilled from the pool; a received frame is the
/// application's until it goes back (a raw frame through `release(_:)`, a message's
/// fragment through its token); only then can the pool put it on the fill ring again.
/// TX frames come from the same pool and return through the completion ring.
///
/// One thread runs the socket (the pool's owner: the creating thread, or the one that
/// calls `adoptOwnership()`); tokens may be returned from anywhere. Closing (deinit)
/// detaches the program, releases the socket, takes back every frame the kernel held and
/// destroys the pool; frames the application still holds (tokens not yet returned) go
/// to the provider when their tokens come back.
public struct XDPSocket: ~Copyable {
    /// The configuration in effect; over a given provider, its frame size and frame count are
    /// the provider's.
    public let configuration: XDPConfiguration
    /// The index of the bound interface (`if_nametoindex`).
    public let interfaceIndex: UInt32
    /// Where the frames come from; its area is the UMEM.
    public let provider: HostPageProvider
    /// The pool over the UMEM, of `frameCount` chunks: the fill ring is refilled and TX frames
    /// are taken from it. Owned by the thread that runs the socket.
    public let pool: PagePool
    /// The tokens of delivered fragments; each message gives its frame back through it
    /// when the message goes away.
    public let tokens: TokenTable
    /// The UMEM as a region, and where its frames lie in it.
    public let regions: RegionMap
    let releaser: XDPFrameReleaser
    /// Whether the redirect program runs in the driver (false: generic XDP, or none).
    public let programIsNative: Bool
    public internal(set) var counters = XDPCounters()

    let resources: XSKResources
    let base: UnsafeMutableRawPointer
    let areaID: UInt16
    let frameShift: UInt64
    let frameCount: Int
    var fill: XDPRing
    var completion: XDPRing
    var rx: XDPRing
    var tx: XDPRing
    /// Per frame: whether the kernel holds it (fill, RX, TX or completion ring).
    let inKernel: UnsafeMutablePointer<Bool>
    let scratch: UnsafeMutableBufferPointer<NetmemRef>
    /// One receive batch's frames, layouts, payload fragments and their tokens.
    let batch: ReceiveBatch

    /// The socket's file descriptor (for `poll`).
    public var fileDescriptor: Int32 { resources.fd }

    /// Creates the UMEM over a new `HostPageProvider`, the socket, its rings and (unless
    /// `attachProgram` is off) the redirect program, and binds the queue.
    public init(_ configuration: XDPConfiguration) throws(XDPError) {
        try configuration.validate()
        let provider: HostPageProvider
        do {
            provider = try HostPageProvider(chunkSize: configuration.frameSize, chunkCount: configuration.frameCount,
                                            options: [.populate])
        } catch { throw .memory(error) }
        try self.init(configuration, provider: provider)
    }

    /// Creates the socket over an existing provider, whose whole area becomes the UMEM
    /// (its chunk size is the frame size and its chunk count the frame count).
    public init(_ configuration: XDPConfiguration, provider: HostPageProvider) throws(XDPError) {
        var configuration = configuration
        configuration.frameSize = provider.chunkSize
        configuration.frameCount = provider.area.chunkCount
        try configuration.validate()
        let name = configuration.interfaceName
        let ifindex = if_nametoindex(name)
        guard ifindex != 0 else { throw .noSuchInterface(name) }
        let area = provider.area
        guard let base = area.baseAddress else {
            throw .invalidConfiguration(name: "provider", value: area.name, reason: "the UMEM must be memory the CPU can read")
        }
        let pool: PagePool
        do {
            pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: configuration.frameCount,
                                                       name: "xdp \(name) queue \(configuration.queue)"))
        } catch { throw .memory(error) }
        let regions: RegionMap
        do { regions = try RegionMap(hostArea: area, kind: "umem", keepingAlive: provider) } catch {
            throw .invalidConfiguration(name: "provider", value: area.name, reason: error.description)
        }

        let resources = XSKResources()
        let fd = cnm_xsk_socket()
        guard fd >= 0 else {
            if fd == -EAFNOSUPPORT { throw .systemCall("socket(AF_XDP) (the kernel has no AF_XDP support)", Errno(rawValue: -fd)) }
            throw XDPError.from(fd, "socket(AF_XDP)")
        }
        resources.fd = fd
        if let b = configuration.busyPoll {
            let r = cnm_socket_busy_poll(fd, Int32(b.microseconds), Int32(b.budget), b.prefer ? 1 : 0)
            guard r == 0 else { throw XDPError.from(r, "setsockopt(SO_PREFER_BUSY_POLL/SO_BUSY_POLL/SO_BUSY_POLL_BUDGET)") }
        }

        let length = UInt64(configuration.frameSize * configuration.frameCount)
        var r = cnm_xsk_umem_reg(fd, base, length, UInt32(configuration.frameSize), UInt32(configuration.headroom))
        guard r == 0 else { throw XDPError.from(r, "setsockopt(XDP_UMEM_REG, \(length) bytes)") }
        let rings: [(Int32, Int, String)] = [
            (CNM_XDP_UMEM_FILL_RING, configuration.receiveRingSize, "XDP_UMEM_FILL_RING"),
            (CNM_XDP_UMEM_COMPLETION_RING, configuration.transmitRingSize, "XDP_UMEM_COMPLETION_RING"),
            (CNM_XDP_RX_RING, configuration.receiveRingSize, "XDP_RX_RING"),
            (CNM_XDP_TX_RING, configuration.transmitRingSize, "XDP_TX_RING"),
        ]
        for (opt, size, optName) in rings {
            var n = Int32(size)
            r = cnm_xsk_setsockopt(fd, opt, &n, 4)
            guard r == 0 else { throw XDPError.from(r, "setsockopt(\(optName), \(size))") }
        }
        var off = cnm_xdp_mmap_offsets()
        r = cnm_xsk_mmap_offsets(fd, &off)
        guard r == 0 else { throw XDPError.from(r, "getsockopt(XDP_MMAP_OFFSETS)") }
        let fillRing = try XDPRing(resources: resources, fd: fd, offsets: off.fr, pageOffset: CNM_XDP_UMEM_PGOFF_FILL_RING,
                           size: configuration.receiveRingSize, elementSize: 8, name: "fill")
        let completionRing = try XDPRing(resources: resources, fd: fd, offsets: off.cr, pageOffset: CNM_XDP_UMEM_PGOFF_COMPLETION_RING,
                                 size: configuration.transmitRingSize, elementSize: 8, name: "completion")
        let rxRing = try XDPRing(resources: resources, fd: fd, offsets: off.rx, pageOffset: CNM_XDP_PGOFF_RX_RING,
                         size: configuration.receiveRingSize, elementSize: 16, name: "RX")
        let txRing = try XDPRing(resources: resources, fd: fd, offsets: off.tx, pageOffset: CNM_XDP_PGOFF_TX_RING,
                         size: configuration.transmitRingSize, elementSize: 16, name: "TX")

        var programIsNative = false
        if configuration.attachProgram {
            let program = try XDPProgram(interfaceIndex: ifindex, interfaceName: name,
                                         entries: Swift.max(configuration.queue + 1, 1), attachMode: configuration.attachMode)
            programIsNative = program.isNative
            resources.program = consume program
        }
        if configuration.mode == .zeroCopy && configuration.attachProgram && !programIsNative {
            throw .zeroCopyUnsupported(interface: name, .notSupported)
        }

        try Self.bind(fd: fd, configuration: configuration, ifindex: ifindex)
        // Steer the queue to the socket. Until the refill below (microseconds) a frame
        // finds the fill ring empty and the kernel counts it in XDP_STATISTICS.
        try resources.program?.register(socket: fd, queue: configuration.queue)

        self.configuration = configuration
        interfaceIndex = ifindex
        self.provider = provider
        self.pool = pool
        self.programIsNative = programIsNative
        self.resources = resources
        fill = fillRing
        completion = completionRing
        rx = rxRing
        tx = txRing
        self.base = base
        areaID = area.id
        frameShift = UInt64(configuration.frameSize.trailingZeroBitCount)
        frameCount = configuration.frameCount
        tokens = TokenTable(name: "xdp \(name) queue \(configuration.queue)")
        self.regions = regions
        releaser = XDPFrameReleaser(pool: pool)
        inKernel = .allocate(capacity: configuration.frameCount)
        inKernel.initialize(repeating: false, count: configuration.frameCount)
        scratch = .allocate(capacity: Swift.max(configuration.receiveRingSize, configuration.transmitRingSize))
        batch = ReceiveBatch(capacity: configuration.receiveRingSize)
        refill()
    }

    /// Binds with the configured mode, retrying a queue that is busy for a moment (a
    /// previous socket's UMEM is released asynchronously). Mirrors `bind(2)` on AF_XDP.
    static func bind(fd: Int32, configuration: XDPConfiguration, ifindex: UInt32) throws(XDPError) {
        var flags = UInt16(configuration.mode == .copy ? CNM_XDP_COPY : CNM_XDP_ZEROCOPY)
        if configuration.useNeedWakeup { flags |= UInt16(CNM_XDP_USE_NEED_WAKEUP) }
        var waited = 0
        var delay = 1
        while true {
            let r = cnm_xsk_bind(fd, ifindex, configuration.queue, flags)
            if r == 0 { return }
            if r == -EBUSY && waited < 1000 {
                usleep(UInt32(delay * 1000))
                waited += delay
                delay = Swift.min(delay * 2, 100)
                continue
            }
            let name = configuration.interfaceName
            if r == -EBUSY { throw .queueBusy(interface: name, queue: configuration.queue, waitedMilliseconds: waited) }
            if configuration.mode == .zeroCopy && (r == -EOPNOTSUPP || r == -EINVAL || r == -EPROTONOSUPPORT) {
                throw .zeroCopyUnsupported(interface: name, Errno(rawValue: -r))
            }
            if r == -EINVAL {
                throw .invalidConfiguration(name: "queue", value: "\(configuration.queue)",
                    reason: "'\(name)' refused it (EINVAL): check the interface's queue count with `ethtool -l \(name)`")
            }
            throw XDPError.from(r, "bind(AF_XDP) to '\(name)' queue \(configuration.queue)")
        }
    }

    deinit {
        // Release the socket (unmap its rings, close it): the kernel stops writing into
        // the UMEM. Then the frames it held are ours again.
        resources.release()
        for i in 0..<frameCount where inKernel[i] {
            pool.recycle(NetmemRef(area: areaID, chunk: UInt32(i)))
        }
        pool.destroy()
        inKernel.deallocate()
        scratch.deallocate()
        batch.deallocate()
    }

    /// Makes the calling thread the one that runs the socket (and owns its pool).
    public func adoptOwnership() { pool.adoptOwnership() }

    // MARK: Frames

    /// The UMEM address of a chunk's start.
    @inline(__always)
    func umemAddress(_ ref: NetmemRef) -> UInt64 { UInt64(ref.chunk) << frameShift }

    /// Tops up the fill ring from the pool. Mirrors what a driver's refill does with
    /// `page_pool_alloc_netmems`.
    mutating func refill() {
        let free = Int(fill.freeSlots(wanted: 32))
        guard free >= 32 || (free > 0 && fill.pending == 0) else { return }
        let want = Swift.min(free, scratch.count)
        let got = pool.allocate(into: UnsafeMutableBufferPointer(rebasing: scratch[0..<want]))
        if got < want { counters.fillStarved += 1 }
        guard got > 0 else { return }
        let start = fill.cachedProducer
        for i in 0..<got {
            let ref = scratch[i]
            fill.address(at: start &+ UInt32(i)).pointee = umemAddress(ref)
            inKernel[Int(ref.chunk)] = true
        }
        fill.submit(UInt32(got))
        counters.filled += got
        if fill.needsWakeup {
            counters.wakeups += 1
            _ = cnm_xsk_wakeup_rx(resources.fd)
        }
    }

    /// A frame an RX descriptor names, taken out of the kernel's hands: its chunk, the
    /// offset in it and the length; nil (counted) when the descriptor names a frame the
    /// socket never gave the kernel. The caller now owns the chunk.
    @inline(__always)
    mutating func takeFrame(_ d: cnm_xdp_desc) -> (ref: NetmemRef, offset: Int, length: Int)? {
        let chunk = Int(d.addr >> frameShift)
        let offset = Int(d.addr & ((1 << frameShift) - 1))
        guard chunk < frameCount, inKernel[chunk], offset + Int(d.len) <= 1 << Int(frameShift) else {
            counters.invalidDescriptors += 1
            return nil
        }
        inKernel[chunk] = false
        return (NetmemRef(area: areaID, chunk: UInt32(chunk)), offset, Int(d.len))
    }

    /// Receives up to `limit` raw frames, handing each to `body` (which owns it: the frame
    /// goes back to the pool when it goes away), and returns how many. Refills the fill
    /// ring as it goes.
    public mutating func receiveFrames(limit: Int = 64, _ body: (consuming XDPFrame) -> Void) -> Int {
        reapCompletions()
        let n = rx.available(limit: UInt32(Swift.max(0, limit)))
        var got = 0
        let start = rx.cachedConsumer
        for i in 0..<n {
            if let f = takeFrame(rx.descriptor(at: start &+ i).pointee) {
                body(XDPFrame(chunk: pool.adopt(f.ref), offset: f.offset, length: f.length))
                got += 1
            }
        }
        rx.release(n)
        counters.received += Int(n)
        refill()
        return got
    }

    /// The bytes of a frame taken from the RX ring (valid while the socket owns it).
    func bytes(ref: NetmemRef, offset: Int, length: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + (Int(ref.chunk) << Int(frameShift)) + offset, count: length)
    }

    // MARK: Waiting

    /// Whether frames are ready to read, from the shared RX ring alone (no system call):
    /// a receive loop can spin on this briefly before it sleeps in `wait`.
    public mutating func hasFramesReady() -> Bool { rx.available(limit: 1) > 0 }

    /// Waits until frames are ready to read or `timeoutMilliseconds` pass (kicking the
    /// kernel first when the fill ring asks for it). Returns whether frames are ready.
    /// Mirrors `poll(2)` on the socket. With wake-up coalescing
    /// (`XDPConfiguration.coalescingMicroseconds`, on by default) it first sleeps that
    /// long without being woken, so it may return up to that much later than
    /// `timeoutMilliseconds`. With busy polling configured it does not sleep: one
    /// non-blocking `recvfrom` runs the queue's NAPI poll on this thread (for at most the
    /// configured busy-poll time), then it returns.
    public mutating func wait(timeoutMilliseconds: Int32) -> Bool {
        if rx.available(limit: 1) > 0 { return true }
        refill()
        if configuration.busyPoll != nil {
            counters.wakeups += 1
            _ = cnm_xsk_wakeup_rx(resources.fd)
            return rx.available(limit: 1) > 0
        }
        if fill.needsWakeup {
            counters.wakeups += 1
            _ = cnm_xsk_wakeup_rx(resources.fd)
        }
        let pause = configuration.coalescingMicroseconds
        if pause > 0 && timeoutMilliseconds != 0 {
            counters.coalescingPauses += 1
            cnm_sleep_us(UInt32(pause))
            if rx.available(limit: 1) > 0 { return true }
            refill()
        }
        counters.pollWaits += 1
        return cnm_poll_in(resources.fd, timeoutMilliseconds) > 0
    }

    // MARK: Statistics

    /// The kernel's counters. Mirrors `getsockopt(XDP_STATISTICS)`.
    public func statistics() throws(XDPError) -> XDPStatistics {
        var s = cnm_xdp_statistics()
        let r = cnm_xsk_statistics(resources.fd, &s)
        guard r == 0 else { throw XDPError.from(r, "getsockopt(XDP_STATISTICS)") }
        var out = XDPStatistics()
        out.rxDropped = s.rx_dropped
        out.rxInvalidDescriptors = s.rx_invalid_descs
        out.rxRingFull = s.rx_ring_full
        out.rxFillRingEmptyDescriptors = s.rx_fill_ring_empty_descs
        out.txInvalidDescriptors = s.tx_invalid_descs
        out.txRingEmptyDescriptors = s.tx_ring_empty_descs
        return out
    }

    /// How full each ring is now.
    public var ringLevels: XDPRingLevels {
        XDPRingLevels(fill: Int(fill.pending), rx: Int(rx.pending), tx: Int(tx.pending), completion: Int(completion.pending))
    }

    /// Frames the kernel holds now (fill, RX, TX and completion rings).
    public var framesInKernel: Int {
        var n = 0
        for i in 0..<frameCount where inKernel[i] { n += 1 }
        return n
    }
}
