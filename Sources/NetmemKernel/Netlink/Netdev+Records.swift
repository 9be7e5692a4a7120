import CNetmemLinux

/// The XDP features a device advertises (`enum netdev_xdp_act`).
public struct NetdevXDPFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let basic = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_BASIC))
    public static let redirect = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_REDIRECT))
    public static let ndoXmit = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_NDO_XMIT))
    public static let xskZeroCopy = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_XSK_ZEROCOPY))
    public static let hwOffload = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_HW_OFFLOAD))
    public static let rxSG = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_RX_SG))
    public static let ndoXmitSG = Self(rawValue: UInt64(CNM_NETDEV_XDP_ACT_NDO_XMIT_SG))

    /// The names `ynl` prints (netdev.yaml's `xdp-act` entries).
    public var names: [String] {
        let all: [(Self, String)] = [(.basic, "basic"), (.redirect, "redirect"), (.ndoXmit, "ndo-xmit"),
                                     (.xskZeroCopy, "xsk-zerocopy"), (.hwOffload, "hw-offload"),
                                     (.rxSG, "rx-sg"), (.ndoXmitSG, "ndo-xmit-sg")]
        return all.filter { contains($0.0) }.map(\.1)
    }

    public var description: String { names.isEmpty ? "none" : names.joined(separator: ",") }
}

/// One device from `dev-get` (netdev.yaml attribute set `dev`).
public struct NetdevDevice: Sendable, Hashable {
    public var ifindex: UInt32
    public var xdpFeatures: NetdevXDPFeatures
    public var xdpZeroCopyMaxSegments: UInt32?
    public var xdpRxMetadataFeatures: UInt64
    public var xskFeatures: UInt64

    public init(attributes a: [NetlinkAttribute]) throws(NetlinkError) {
        ifindex = try a.require(CNM_NETDEV_A_DEV_IFINDEX, in: "dev-get reply").u32()
        xdpFeatures = NetdevXDPFeatures(rawValue: try a.first(CNM_NETDEV_A_DEV_XDP_FEATURES)?.u64() ?? 0)
        xdpZeroCopyMaxSegments = try a.first(CNM_NETDEV_A_DEV_XDP_ZC_MAX_SEGS)?.u32()
        xdpRxMetadataFeatures = try a.first(CNM_NETDEV_A_DEV_XDP_RX_METADATA_FEATURES)?.u64() ?? 0
        xskFeatures = try a.first(CNM_NETDEV_A_DEV_XSK_FEATURES)?.u64() ?? 0
    }
}

/// A queue's direction (`enum netdev_queue_type`).
public enum NetdevQueueType: UInt32, Sendable, Hashable, CustomStringConvertible {
    case rx = 0
    case tx = 1
    public var description: String { self == .rx ? "rx" : "tx" }
}

/// One queue from `queue-get` (attribute set `queue`).
public struct NetdevQueue: Sendable, Hashable {
    public var ifindex: UInt32
    public var id: UInt32
    public var type: NetdevQueueType
    public var napiID: UInt32?
    /// The devmem binding id bound to this RX queue, if any.
    public var dmabuf: UInt32?
    /// Whether an io_uring zcrx interface queue is bound.
    public var ioUring: Bool
    /// Whether an AF_XDP socket is bound.
    public var xsk: Bool

    public init(attributes a: [NetlinkAttribute]) throws(NetlinkError) {
        ifindex = try a.require(CNM_NETDEV_A_QUEUE_IFINDEX, in: "queue-get reply").u32()
        id = try a.require(CNM_NETDEV_A_QUEUE_ID, in: "queue-get reply").u32()
        let rawType = try a.require(CNM_NETDEV_A_QUEUE_TYPE, in: "queue-get reply").u32()
        guard let t = NetdevQueueType(rawValue: rawType) else {
            throw .badLength(what: "queue type", length: Int(rawType), reason: "not rx (0) or tx (1)")
        }
        type = t
        napiID = try a.first(CNM_NETDEV_A_QUEUE_NAPI_ID)?.u32()
        dmabuf = try a.first(CNM_NETDEV_A_QUEUE_DMABUF)?.u32()
        ioUring = a.first(CNM_NETDEV_A_QUEUE_IO_URING) != nil
        xsk = a.first(CNM_NETDEV_A_QUEUE_XSK) != nil
    }
}

/// One NAPI instance from `napi-get` (attribute set `napi`).
public struct NetdevNAPI: Sendable, Hashable {
    public var ifindex: UInt32
    public var id: UInt32
    public var irq: UInt32?
    public var pid: UInt32?
    public var deferHardIRQs: UInt32?
    public var groFlushTimeout: UInt64?
    public var threaded: UInt32?

    public init(attributes a: [NetlinkAttribute]) throws(NetlinkError) {
        ifindex = try a.require(CNM_NETDEV_A_NAPI_IFINDEX, in: "napi-get reply").u32()
        id = try a.require(CNM_NETDEV_A_NAPI_ID, in: "napi-get reply").u32()
        irq = try a.first(CNM_NETDEV_A_NAPI_IRQ)?.u32()
        pid = try a.first(CNM_NETDEV_A_NAPI_PID)?.u32()
        deferHardIRQs = try a.first(CNM_NETDEV_A_NAPI_DEFER_HARD_IRQS)?.u32()
        groFlushTimeout = try a.first(CNM_NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT)?.uint()
        threaded = try a.first(CNM_NETDEV_A_NAPI_THREADED)?.u32()
    }
}

/// One kernel page pool from `page-pool-get` (attribute set `page-pool`).
public struct NetdevPagePool: Sendable, Hashable {
    public var id: UInt64
    /// Absent for pools whose device is gone (orphaned, waiting for in-flight pages).
    public var ifindex: UInt32?
    public var napiID: UInt64?
    public var inflight: UInt64?
    public var inflightMemory: UInt64?
    public var detachTime: UInt64?
    /// The devmem binding id providing this pool's memory, if any.
    public var dmabuf: UInt32?
    public var ioUring: Bool

    public init(attributes a: [NetlinkAttribute]) throws(NetlinkError) {
        id = try a.require(CNM_NETDEV_A_PAGE_POOL_ID, in: "page-pool-get reply").uint()
        ifindex = try a.first(CNM_NETDEV_A_PAGE_POOL_IFINDEX)?.u32()
        napiID = try a.first(CNM_NETDEV_A_PAGE_POOL_NAPI_ID)?.uint()
        inflight = try a.first(CNM_NETDEV_A_PAGE_POOL_INFLIGHT)?.uint()
        inflightMemory = try a.first(CNM_NETDEV_A_PAGE_POOL_INFLIGHT_MEM)?.uint()
        detachTime = try a.first(CNM_NETDEV_A_PAGE_POOL_DETACH_TIME)?.uint()
        dmabuf = try a.first(CNM_NETDEV_A_PAGE_POOL_DMABUF)?.u32()
        ioUring = a.first(CNM_NETDEV_A_PAGE_POOL_IO_URING) != nil
    }
}

/// One pool's counters from `page-pool-stats-get`, named as the kernel names them.
public struct NetdevPagePoolStats: Sendable, Hashable {
    public var poolID: UInt64
    public var ifindex: UInt32?
    /// Counter name (`alloc-fast`, `recycle-ring`, …) → value, in netdev.yaml's order.
    public var counters: [(name: String, value: UInt64)] { _counters.map { ($0.name, $0.value) } }
    private var _counters: [Counter]

    struct Counter: Sendable, Hashable {
        let name: String
        let value: UInt64
    }

    public static let counterNames: [(Int32, String)] = [
        (CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_FAST, "alloc-fast"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_SLOW, "alloc-slow"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_SLOW_HIGH_ORDER, "alloc-slow-high-order"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_EMPTY, "alloc-empty"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_REFILL, "alloc-refill"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_WAIVE, "alloc-waive"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_CACHED, "recycle-cached"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_CACHE_FULL, "recycle-cache-full"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RING, "recycle-ring"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RING_FULL, "recycle-ring-full"),
        (CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RELEASED_REFCNT, "recycle-released-refcnt"),
    ]

    public init(attributes a: [NetlinkAttribute]) throws(NetlinkError) {
        let info = try a.require(CNM_NETDEV_A_PAGE_POOL_STATS_INFO, in: "page-pool-stats-get reply").nested()
        poolID = try info.require(CNM_NETDEV_A_PAGE_POOL_ID, in: "page-pool-stats info").uint()
        ifindex = try info.first(CNM_NETDEV_A_PAGE_POOL_IFINDEX)?.u32()
        var counters: [Counter] = []
        for (type, name) in NetdevPagePoolStats.counterNames {
            if let attr = a.first(type) { counters.append(Counter(name: name, value: try attr.uint())) }
        }
        _counters = counters
    }

    public func counter(_ name: String) -> UInt64? { _counters.first { $0.name == name }?.value }
}
