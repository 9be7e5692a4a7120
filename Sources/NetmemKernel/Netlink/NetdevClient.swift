import CNetmemLinux

/// A client of the kernel's `netdev` generic-netlink family (netdev.yaml): devices,
/// queues, NAPI instances, page pools and their statistics. What it sees is per network
/// namespace: the namespace the socket was made in.
///
/// Mirrors `ynl --family netdev --dump dev-get | queue-get | napi-get | page-pool-get |
/// page-pool-stats-get`.
public struct NetdevClient: ~Copyable {
    var socket: GenericNetlinkSocket

    /// Opens a socket (in `namespacePath`'s namespace, if given) and resolves `netdev`.
    public init(namespacePath: String? = nil) throws(NetlinkError) {
        socket = try GenericNetlinkSocket(family: CNM_NETDEV_FAMILY_NAME, namespacePath: namespacePath)
    }

    /// Mirrors `dev-get` (dump).
    public mutating func devices() throws(NetlinkError) -> [NetdevDevice] {
        var out: [NetdevDevice] = []
        for attrs in try socket.dump(UInt8(CNM_NETDEV_CMD_DEV_GET), what: "netdev dev-get dump") {
            out.append(try NetdevDevice(attributes: attrs))
        }
        return out.sorted { $0.ifindex < $1.ifindex }
    }

    /// Mirrors `dev-get` (do) for one device.
    public mutating func device(ifindex: UInt32) throws(NetlinkError) -> NetdevDevice {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_DEV_GET), what: "netdev dev-get ifindex \(ifindex)") {
            $0.put(CNM_NETDEV_A_DEV_IFINDEX, u32: ifindex)
        }
        guard let first = replies.first else {
            throw .missingAttribute(what: "dev-get reply", attribute: UInt16(CNM_NETDEV_A_DEV_IFINDEX))
        }
        return try NetdevDevice(attributes: first)
    }

    /// Mirrors `queue-get` (dump), optionally for one device.
    public mutating func queues(ifindex: UInt32? = nil) throws(NetlinkError) -> [NetdevQueue] {
        var out: [NetdevQueue] = []
        let what = ifindex.map { "netdev queue-get dump ifindex \($0)" } ?? "netdev queue-get dump"
        for attrs in try socket.dump(UInt8(CNM_NETDEV_CMD_QUEUE_GET), what: what, {
            if let ifindex { $0.put(CNM_NETDEV_A_QUEUE_IFINDEX, u32: ifindex) }
        }) {
            out.append(try NetdevQueue(attributes: attrs))
        }
        return out.sorted { ($0.ifindex, $0.type.rawValue, $0.id) < ($1.ifindex, $1.type.rawValue, $1.id) }
    }

    /// Mirrors `queue-get` (do) for one queue.
    public mutating func queue(ifindex: UInt32, id: UInt32, type: NetdevQueueType) throws(NetlinkError) -> NetdevQueue {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_QUEUE_GET),
                                         what: "netdev queue-get ifindex \(ifindex) \(type) \(id)") {
            $0.put(CNM_NETDEV_A_QUEUE_IFINDEX, u32: ifindex)
            $0.put(CNM_NETDEV_A_QUEUE_TYPE, u32: type.rawValue)
            $0.put(CNM_NETDEV_A_QUEUE_ID, u32: id)
        }
        guard let first = replies.first else {
            throw .missingAttribute(what: "queue-get reply", attribute: UInt16(CNM_NETDEV_A_QUEUE_ID))
        }
        return try NetdevQueue(attributes: first)
    }

    /// Mirrors `napi-get` (do) for one NAPI id.
    public mutating func napi(id: UInt32) throws(NetlinkError) -> NetdevNAPI {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_NAPI_GET), what: "netdev napi-get id \(id)") {
            $0.put(CNM_NETDEV_A_NAPI_ID, u32: id)
        }
        guard let first = replies.first else {
            throw .missingAttribute(what: "napi-get reply", attribute: UInt16(CNM_NETDEV_A_NAPI_ID))
        }
        return try NetdevNAPI(attributes: first)
    }

    /// Mirrors `page-pool-get` (do) for one pool.
    public mutating func pagePool(id: UInt64) throws(NetlinkError) -> NetdevPagePool {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_PAGE_POOL_GET), what: "netdev page-pool-get id \(id)") {
            $0.put(CNM_NETDEV_A_PAGE_POOL_ID, u64: id)
        }
        guard let first = replies.first else {
            throw .missingAttribute(what: "page-pool-get reply", attribute: UInt16(CNM_NETDEV_A_PAGE_POOL_ID))
        }
        return try NetdevPagePool(attributes: first)
    }

    /// Mirrors `page-pool-stats-get` (do) for one pool (the request nests the pool id in
    /// `info`).
    public mutating func pagePoolStats(id: UInt64) throws(NetlinkError) -> NetdevPagePoolStats {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_PAGE_POOL_STATS_GET), what: "netdev page-pool-stats-get id \(id)") {
            $0.beginNest(CNM_NETDEV_A_PAGE_POOL_STATS_INFO)
            $0.put(CNM_NETDEV_A_PAGE_POOL_ID, u64: id)
            $0.endNest()
        }
        guard let first = replies.first else {
            throw .missingAttribute(what: "page-pool-stats-get reply", attribute: UInt16(CNM_NETDEV_A_PAGE_POOL_STATS_INFO))
        }
        return try NetdevPagePoolStats(attributes: first)
    }

    /// Mirrors `napi-get` (dump), optionally for one device.
    public mutating func napis(ifindex: UInt32? = nil) throws(NetlinkError) -> [NetdevNAPI] {
        var out: [NetdevNAPI] = []
        for attrs in try socket.dump(UInt8(CNM_NETDEV_CMD_NAPI_GET), what: "netdev napi-get dump", {
            if let ifindex { $0.put(CNM_NETDEV_A_NAPI_IFINDEX, u32: ifindex) }
        }) {
            out.append(try NetdevNAPI(attributes: attrs))
        }
        return out
    }

    /// Mirrors `page-pool-get` (dump).
    public mutating func pagePools() throws(NetlinkError) -> [NetdevPagePool] {
        var out: [NetdevPagePool] = []
        for attrs in try socket.dump(UInt8(CNM_NETDEV_CMD_PAGE_POOL_GET), what: "netdev page-pool-get dump") {
            out.append(try NetdevPagePool(attributes: attrs))
        }
        return out.sorted { $0.id < $1.id }
    }

    /// Mirrors `page-pool-stats-get` (dump). Empty when the kernel lacks
    /// CONFIG_PAGE_POOL_STATS (it then answers EOPNOTSUPP, which is thrown).
    public mutating func pagePoolStats() throws(NetlinkError) -> [NetdevPagePoolStats] {
        var out: [NetdevPagePoolStats] = []
        for attrs in try socket.dump(UInt8(CNM_NETDEV_CMD_PAGE_POOL_STATS_GET), what: "netdev page-pool-stats-get dump") {
            out.append(try NetdevPagePoolStats(attributes: attrs))
        }
        return out.sorted { $0.poolID < $1.poolID }
    }

    /// Mirrors `bind-rx`: binds the dma-buf `fd` to the RX `queues` of `ifindex` and
    /// returns the binding id. The binding lives as long as this client's socket.
    public mutating func bindRX(ifindex: UInt32, queues: [UInt32], dmabufFD: Int32) throws(NetlinkError) -> UInt32 {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_BIND_RX),
                                         what: "netdev bind-rx (ifindex \(ifindex), queues \(queues), fd \(dmabufFD))") { b in
            NetdevClient.encodeBind(&b, ifindex: ifindex, queues: queues, type: .rx, fd: dmabufFD)
        }
        return try NetdevClient.bindingID(replies, what: "bind-rx reply")
    }

    /// Mirrors `bind-tx`: binds the dma-buf `fd` to `ifindex` for transmit and returns the
    /// binding id that sends name in `SCM_DEVMEM_DMABUF`.
    public mutating func bindTX(ifindex: UInt32, dmabufFD: Int32) throws(NetlinkError) -> UInt32 {
        let replies = try socket.request(UInt8(CNM_NETDEV_CMD_BIND_TX),
                                         what: "netdev bind-tx (ifindex \(ifindex), fd \(dmabufFD))") { b in
            NetdevClient.encodeBind(&b, ifindex: ifindex, queues: [], type: .tx, fd: dmabufFD)
        }
        return try NetdevClient.bindingID(replies, what: "bind-tx reply")
    }

    /// The attributes of a bind request: ifindex, fd, and one nested `queues` attribute
    /// (queue id + type) per queue.
    public static func encodeBind(_ b: inout NetlinkMessageBuilder, ifindex: UInt32, queues: [UInt32],
                                  type: NetdevQueueType, fd: Int32) {
        b.put(CNM_NETDEV_A_DMABUF_IFINDEX, u32: ifindex)
        b.put(CNM_NETDEV_A_DMABUF_FD, u32: UInt32(bitPattern: fd))
        for q in queues {
            b.beginNest(CNM_NETDEV_A_DMABUF_QUEUES)
            b.put(CNM_NETDEV_A_QUEUE_ID, u32: q)
            b.put(CNM_NETDEV_A_QUEUE_TYPE, u32: type.rawValue)
            b.endNest()
        }
    }

    static func bindingID(_ replies: [[NetlinkAttribute]], what: String) throws(NetlinkError) -> UInt32 {
        for attrs in replies {
            if let id = attrs.first(CNM_NETDEV_A_DMABUF_ID) { return try id.u32() }
        }
        throw .missingAttribute(what: what, attribute: UInt16(CNM_NETDEV_A_DMABUF_ID))
    }
}

/// What `ethtool -g` reports about header split.
public enum TCPDataSplit: String, Sendable, Hashable {
    case unknown, disabled, enabled
}

/// A device's ring settings from the `ethtool` family (`ETHTOOL_MSG_RINGS_GET`).
public struct EthtoolRings: Sendable, Hashable {
    public var rx: UInt32?
    public var rxMax: UInt32?
    public var tcpDataSplit: TCPDataSplit
    public var hdsThreshold: UInt32?
}

/// A device's channel counts (`ETHTOOL_MSG_CHANNELS_GET`).
public struct EthtoolChannels: Sendable, Hashable {
    public var rx: UInt32?
    public var combined: UInt32?
    public var rxMax: UInt32?
    public var combinedMax: UInt32?
}

/// A client of the `ethtool` generic-netlink family, for what devmem and zcrx need to
/// know: header split (`tcp-data-split`) and queue counts. Mirrors `ethtool -g IF` and
/// `ethtool -l IF`.
public struct EthtoolClient: ~Copyable {
    var socket: GenericNetlinkSocket

    public init(namespacePath: String? = nil) throws(NetlinkError) {
        socket = try GenericNetlinkSocket(family: CNM_ETHTOOL_FAMILY_NAME, namespacePath: namespacePath)
    }

    private static func header(_ b: inout NetlinkMessageBuilder, _ nest: Int32, ifindex: UInt32) {
        b.beginNest(nest)
        b.put(CNM_ETHTOOL_A_HEADER_DEV_INDEX, u32: ifindex)
        b.endNest()
    }

    /// Mirrors `ethtool -g IF`.
    public mutating func rings(ifindex: UInt32) throws(NetlinkError) -> EthtoolRings {
        let replies = try socket.request(UInt8(CNM_ETHTOOL_MSG_RINGS_GET), what: "ethtool rings-get ifindex \(ifindex)") {
            EthtoolClient.header(&$0, CNM_ETHTOOL_A_RINGS_HEADER, ifindex: ifindex)
        }
        guard let a = replies.first else {
            throw .missingAttribute(what: "ethtool rings-get reply", attribute: UInt16(CNM_ETHTOOL_A_RINGS_HEADER))
        }
        let split: TCPDataSplit
        switch try a.first(CNM_ETHTOOL_A_RINGS_TCP_DATA_SPLIT)?.u8() {
        case UInt8(CNM_ETHTOOL_TCP_DATA_SPLIT_ENABLED): split = .enabled
        case UInt8(CNM_ETHTOOL_TCP_DATA_SPLIT_DISABLED): split = .disabled
        default: split = .unknown
        }
        return EthtoolRings(rx: try a.first(CNM_ETHTOOL_A_RINGS_RX)?.u32(),
                            rxMax: try a.first(CNM_ETHTOOL_A_RINGS_RX_MAX)?.u32(),
                            tcpDataSplit: split,
                            hdsThreshold: try a.first(CNM_ETHTOOL_A_RINGS_HDS_THRESH)?.u32())
    }

    /// Mirrors `ethtool -l IF`.
    public mutating func channels(ifindex: UInt32) throws(NetlinkError) -> EthtoolChannels {
        let replies = try socket.request(UInt8(CNM_ETHTOOL_MSG_CHANNELS_GET), what: "ethtool channels-get ifindex \(ifindex)") {
            EthtoolClient.header(&$0, CNM_ETHTOOL_A_CHANNELS_HEADER, ifindex: ifindex)
        }
        guard let a = replies.first else {
            throw .missingAttribute(what: "ethtool channels-get reply", attribute: UInt16(CNM_ETHTOOL_A_CHANNELS_HEADER))
        }
        return EthtoolChannels(rx: try a.first(CNM_ETHTOOL_A_CHANNELS_RX_COUNT)?.u32(),
                               combined: try a.first(CNM_ETHTOOL_A_CHANNELS_COMBINED_COUNT)?.u32(),
                               rxMax: try a.first(CNM_ETHTOOL_A_CHANNELS_RX_MAX)?.u32(),
                               combinedMax: try a.first(CNM_ETHTOOL_A_CHANNELS_COMBINED_MAX)?.u32())
    }
}
