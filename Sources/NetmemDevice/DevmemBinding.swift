import Netmem
import Synchronization

/// A receive queue of a network interface.
public struct ReceiveQueue: Hashable, Sendable, CustomStringConvertible {
    /// The network interface's name.
    public var interface: String
    /// The queue's index on the interface.
    public var index: Int
    /// Receive queue `index` of `interface`.
    public init(interface: String, index: Int) {
        self.interface = interface
        self.index = index
    }
    public var description: String { "\(interface) rx queue \(index)" }
}

/// Which queue has which binding: the kernel's rule that a queue has at most one
/// binding and a region is bound to a queue at most once. One registry per machine
/// (`shared`); tests may make their own.
public final class BindingRegistry: Sendable {
    private let bound = Mutex<[ReceiveQueue: (binding: UInt32, region: UInt32)]>([:])
    /// An empty registry of its own, apart from `shared` (for tests).
    public init() {}
    /// The machine's registry, which bindings use by default.
    public static let shared = BindingRegistry()

    func claim(_ queues: [ReceiveQueue], binding: UInt32, region: UInt32) throws(DeviceMemoryError) {
        let error: DeviceMemoryError? = bound.withLockChecked { map in
            var seen = Set<ReceiveQueue>()
            for q in queues {
                if let existing = map[q] {
                    return existing.region == region ? .alreadyBound(queue: q) : .queueBusy(queue: q, bindingID: existing.binding)
                }
                if !seen.insert(q).inserted { return .alreadyBound(queue: q) }
            }
            for q in queues { map[q] = (binding, region) }
            return nil
        }
        if let error { throw error }
    }

    func release(_ queues: [ReceiveQueue], binding: UInt32) {
        bound.withLockChecked { map in
            for q in queues where map[q]?.binding == binding { map[q] = nil }
        }
    }

    /// The binding a queue has, if any.
    public func binding(of queue: ReceiveQueue) -> UInt32? { bound.withLockChecked { $0[queue]?.binding } }
}

/// What a binding has outstanding.
public struct BindingReport: Sendable, Equatable, CustomStringConvertible {
    /// The binding reported on (`DevmemBinding.id`).
    public var bindingID: UInt32
    /// All chunks of the binding.
    public var chunks: Int
    /// Chunks not in the chunk allocator: held by pools or by applications.
    public var outstanding: Int
    /// Whether `unbind()` has run.
    public var unbound: Bool
    /// Unbound and every chunk came back: the chunk allocator is gone.
    public var freed: Bool
    public var description: String {
        "binding \(bindingID): \(outstanding) of \(chunks) chunks outstanding"
            + (freed ? ", freed" : unbound ? ", unbound (waiting for returns)" : ", bound")
    }
}

/// A region bound to one or more receive queues. Mirrors the kernel's
/// `net_devmem_dmabuf_binding`: it cuts the region's segments into chunks (one area per
/// segment) with a first-fit chunk allocator, and is the memory provider of each bound
/// queue's page pool.
///
/// `unbind()` stops the queues allocating at once; the binding keeps its chunk allocator
/// until the last chunk any pool or application holds comes back, and reports what is
/// outstanding until then. Each queue's RX thread destroys its pool when it sees the
/// binding unbound (the kernel restarts the queue the same way).
public final class DevmemBinding: MemoryProvider, @unchecked Sendable {
    /// The chunk sizes a binding accepts, in bytes: 4 KiB, 64 KiB and 2 MiB.
    public static let allowedChunkSizes = [4096, 65536, 2 << 20]

    /// The binding's identifier, unique in the process.
    public let id: UInt32
    /// The region whose memory the binding lends.
    public let region: DeviceMemoryRegion
    /// The receive queues the region is bound to.
    public let queues: [ReceiveQueue]
    /// Bytes per chunk, one of `allowedChunkSizes`.
    public let chunkSize: Int
    /// One area per segment, in segment order (segments too small for a chunk have none).
    public let areas: [NetmemArea]
    /// Region coordinates of the areas' chunks.
    public let regionMap: RegionMap
    private let areaSegment: [UInt16: Int]
    private let segmentArea: [NetmemArea?]
    private let registry: BindingRegistry

    struct State {
        var allocator: ChunkAllocator?
        var unbound = false
        var pools: [WeakPool] = []
        var consumers: [WeakTable] = []
    }
    struct WeakPool { weak var pool: PagePool? }
    struct WeakTable { weak var table: TokenTable? }
    private let state: Mutex<State>
    private let lending = Atomic<Bool>(true)
    static let nextID = Atomic<UInt32>(1)

    /// Binds `region` to `queues`. Mirrors `NETDEV_CMD_BIND_RX`.
    public init(region: DeviceMemoryRegion, queues: [ReceiveQueue], chunkSize: Int = 4096,
                registry: BindingRegistry = .shared) throws(DeviceMemoryError) {
        guard !queues.isEmpty else { throw .noQueues }
        guard Self.allowedChunkSizes.contains(chunkSize) else {
            throw .core(.invalidChunkSize(chunkSize, allowed: "4096, 65536 or 2097152 bytes"))
        }
        let id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        var areas: [NetmemArea] = []
        var areaSegment: [UInt16: Int] = [:]
        var perSegment: [Int] = []
        var segmentArea: [NetmemArea?] = []
        for (i, seg) in region.segments.enumerated() {
            let chunks = seg.length / chunkSize
            perSegment.append(chunks)
            guard chunks > 0 else { segmentArea.append(nil); continue }
            let area: NetmemArea
            do {
                area = try NetmemArea(name: "devmem \(id) segment \(i)", chunkSize: chunkSize, chunkCount: chunks,
                                      baseAddress: region.baseAddress.map { $0 + seg.offset },
                                      deviceBase: seg.deviceAddress)
            } catch { throw .core(error) }
            areas.append(area)
            segmentArea.append(area)
            areaSegment[area.id] = i
        }
        guard !areas.isEmpty else {
            throw .invalidSegments("no segment holds a whole \(chunkSize)-byte chunk")
        }
        let map = try RegionMap(region: region, areas: areas.map { a in (a, region.segments[areaSegment[a.id]!].offset) })
        try registry.claim(queues, binding: id, region: region.id)
        regionMap = map
        self.id = id
        self.region = region
        self.queues = queues
        self.chunkSize = chunkSize
        self.areas = areas
        self.areaSegment = areaSegment
        self.segmentArea = segmentArea
        self.registry = registry
        state = Mutex(State(allocator: ChunkAllocator(chunksPerSegment: perSegment)))
    }

    deinit { registry.release(queues, binding: id) }

    /// All chunks of the binding.
    public var chunkCount: Int { areas.reduce(0) { $0 + $1.chunkCount } }

    // MARK: MemoryProvider

    /// `MemoryProvider` requirement; returns 0 once the binding is unbound.
    public func allocateChunks(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        guard lending.load(ordering: .acquiring) else { return 0 }
        return state.withLockChecked { s in
            var n = 0
            while n < buffer.count, let (seg, chunk) = s.allocator?.allocate() {
                buffer[n] = ref(segment: seg, chunk: chunk)
                n += 1
            }
            return n
        }
    }

    /// `MemoryProvider` requirement: `count` adjacent chunks of one segment from the first-fit
    /// allocator; nil once the binding is unbound.
    public func allocateContiguous(count: Int) -> NetmemRef? {
        guard lending.load(ordering: .acquiring) else { return nil }
        return state.withLockChecked { s in
            s.allocator?.allocate(count: count).map { ref(segment: $0.segment, chunk: $0.chunk) }
        }
    }

    /// `MemoryProvider` requirement; once the binding is unbound every chunk comes back
    /// `.retired`, and the last one frees the chunk allocator. Traps for a chunk of another
    /// provider or one that comes back after the binding was freed.
    public func releaseChunk(_ ref: NetmemRef) -> ChunkRelease {
        guard let seg = areaSegment[ref.areaID] else {
            preconditionFailure("\(ref) was released to binding \(id), which does not own it")
        }
        return state.withLockChecked { s in
            guard var allocator = s.allocator else {
                preconditionFailure("\(ref) came back to binding \(id) after it was freed")
            }
            allocator.release(segment: seg, chunk: Int(ref.chunk))
            if s.unbound && allocator.freeCount == allocator.totalCount {
                precondition(allocator.isEntirelyFree, "binding \(id) chunk allocator is fragmented after all returns")
                s.allocator = nil  // freed
                return .retired
            }
            s.allocator = allocator
            return s.unbound ? .retired : .reusable
        }
    }

    /// `MemoryProvider` requirement: true until `unbind()`.
    public var isLending: Bool { lending.load(ordering: .acquiring) }

    /// `MemoryProvider` requirement: kind "devmem", with the binding, region, queues and state.
    public func describe() -> ProviderDescription {
        let r = report
        return ProviderDescription(kind: "devmem", chunkSize: chunkSize, chunkCount: r.chunks,
                                   available: r.chunks - r.outstanding, readable: region.access == .mapped,
                                   details: [("binding", "\(id)"), ("region", "\(region.id)"),
                                             ("queues", queues.map(\.description).joined(separator: ", ")),
                                             ("state", r.freed ? "freed" : r.unbound ? "unbound" : "bound")])
    }

    // MARK: Pools, consumers, unbind

    /// A page pool for one bound queue, with this binding as its provider. Call from the
    /// queue's RX thread (it becomes the owner).
    public func makePool(for queue: ReceiveQueue, poolSize: Int, fragmentSize: Int? = nil) throws(DeviceMemoryError) -> PagePool {
        guard queues.contains(queue) else { throw .notBound(queue: queue) }
        guard isLending else { throw .unbound(bindingID: id) }
        let pool: PagePool
        do {
            pool = try PagePool(PagePool.Configuration(provider: self, poolSize: poolSize, fragmentSize: fragmentSize,
                                                       name: "\(queue) binding \(id)"))
        } catch { throw .core(error) }
        state.withLockChecked { $0.pools.append(WeakPool(pool: pool)) }
        return pool
    }

    /// A token table whose kept tokens (`keepUntilUnbind`) are released when the binding
    /// unbinds.
    public func makeConsumer(name: String, closeBehavior: TokenTable.CloseBehavior = .releaseHeld) -> TokenTable {
        let table = TokenTable(name: name, closeBehavior: closeBehavior)
        state.withLockChecked { $0.consumers.append(WeakTable(table: table)) }
        return table
    }

    /// Unbinds: the queues stop allocating at once, kept tokens are released, and the
    /// binding is freed when the last chunk comes back. Mirrors `net_devmem_unbind_dmabuf`.
    public func unbind() {
        lending.store(false, ordering: .releasing)
        let (pools, consumers) = state.withLockChecked { s -> ([PagePool], [TokenTable]) in
            s.unbound = true
            if let a = s.allocator, a.freeCount == a.totalCount { s.allocator = nil }
            return (s.pools.compactMap(\.pool), s.consumers.compactMap(\.table))
        }
        registry.release(queues, binding: id)
        for p in pools { p.stopAllocating() }
        for c in consumers { c.releaseKept() }
        for p in pools { p.pollShutdown() }
    }

    /// What the binding has outstanding now (any thread).
    public var report: BindingReport {
        state.withLockChecked { s in
            let total = chunkCount
            let free = s.allocator?.freeCount ?? total
            return BindingReport(bindingID: id, chunks: total, outstanding: total - free, unbound: s.unbound,
                                 freed: s.unbound && s.allocator == nil)
        }
    }

    /// Chunks held by pools or applications.
    public var outstanding: Int { report.outstanding }
    /// Whether the binding is unbound and every chunk came back.
    public var isFreed: Bool { report.freed }

    // MARK: Offsets

    /// Where a fragment lies in the region (the kernel's `frag_offset`).
    public func regionOffset(of f: NetmemFragment) -> UInt64 { regionMap.regionOffset(of: f) }

    /// A `Fragment` for a pool fragment of this binding, with a token from `consumer`
    /// (which now holds the fragment's reference).
    public func deliver(_ f: NetmemFragment, from pool: PagePool, to consumer: TokenTable) -> Fragment {
        consumer.issue(f, owner: pool, regions: regionMap)
    }

    private func ref(segment: Int, chunk: Int) -> NetmemRef {
        segmentArea[segment]!.ref(chunk: chunk)
    }
}
