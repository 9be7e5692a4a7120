import CNetmemLinux
import Glibc
import NetmemDevice
import SystemPackage

/// A dma-buf bound to RX queues of a NIC for devmem TCP (`bind-rx`). The kernel keeps the
/// binding while the netlink socket that made it is open: this value owns that socket,
/// and dropping it unbinds (the queues restart with the driver's own memory).
public struct KernelDevmemRXBinding: ~Copyable {
    /// The kernel's binding id; fragments name it as their `regionID`.
    public let id: UInt32
    public let interface: String
    public let ifindex: UInt32
    public let queues: [UInt32]
    var client: NetdevClient

    /// Binds `dmabufFD` to RX `queues` of `interface`. On failure the error names every
    /// missing piece found (no dma-buf, header split off, no queue management, no such
    /// queue) and carries the kernel's errno and extended-ACK text.
    public init(interface: String, queues: [UInt32], dmabufFD: Int32) throws(DevmemError) {
        guard let ifindex = NetworkInterface.index(name: interface) else { throw .noSuchInterface(interface) }
        var client: NetdevClient
        do { client = try NetdevClient() } catch {
            throw .bindRefused(interface: interface, missing: [], kernel: error)
        }
        do {
            id = try client.bindRX(ifindex: ifindex, queues: queues, dmabufFD: dmabufFD)
        } catch {
            let missing = DevmemDiagnosis.missingPieces(interface: interface, ifindex: ifindex, queues: queues,
                                                        fd: dmabufFD, kernel: error)
            throw .bindRefused(interface: interface, missing: missing, kernel: error)
        }
        self.client = client
        self.interface = interface
        self.ifindex = ifindex
        self.queues = queues
    }

    /// Binds a region's fd (see `init(interface:queues:dmabufFD:)`).
    public init(region: DeviceMemoryRegion, interface: String, queues: [UInt32]) throws(DevmemError) {
        guard let fd = region.fileDescriptor else {
            throw .bindRefused(interface: interface,
                               missing: [.notADmabuf(fd: -1, what: "a region without a file descriptor")],
                               kernel: .systemCall("bind-rx", .badFileDescriptor))
        }
        try self.init(interface: interface, queues: queues, dmabufFD: fd.rawValue)
    }
}

/// A dma-buf bound to a NIC for devmem TCP transmit (`bind-tx`). Lives as long as its
/// netlink socket, which this value owns.
public struct KernelDevmemTXBinding: ~Copyable {
    public let id: UInt32
    public let interface: String
    var client: NetdevClient

    public init(interface: String, dmabufFD: Int32) throws(DevmemError) {
        guard let ifindex = NetworkInterface.index(name: interface) else { throw .noSuchInterface(interface) }
        var client: NetdevClient
        do { client = try NetdevClient() } catch {
            throw .bindRefused(interface: interface, missing: [], kernel: error)
        }
        do {
            id = try client.bindTX(ifindex: ifindex, dmabufFD: dmabufFD)
        } catch {
            let missing = DevmemDiagnosis.missingPieces(interface: interface, ifindex: ifindex, queues: [],
                                                        fd: dmabufFD, kernel: error)
            throw .bindRefused(interface: interface, missing: missing, kernel: error)
        }
        self.client = client
        self.interface = interface
    }

    /// Sends `length` bytes at `regionOffset` of the bound dma-buf on `socket`.
    public func send(_ socket: FileDescriptor, regionOffset: UInt64, length: Int) throws(DevmemError) -> Int {
        try DevmemTransmit.send(socket, bindingID: id, regionOffset: regionOffset, length: length)
    }
}

/// Finds out which pieces devmem TCP / zcrx lack for an interface, queue set and fd.
public enum DevmemDiagnosis {
    /// What `/proc/self/fd/N` links to, e.g. `anon_inode:dmabuf` or `/memfd:name (deleted)`.
    public static func fdTarget(_ fd: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: 512)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether `fd` is a dma-buf (its file is the dma-buf anon inode).
    public static func isDmabuf(_ fd: Int32) -> Bool {
        fdTarget(fd)?.hasPrefix("anon_inode:dmabuf") ?? false
    }

    /// Describes an fd for an error message.
    static func describe(_ fd: Int32) -> String {
        guard let t = fdTarget(fd) else { return "not an open file descriptor" }
        if t.hasPrefix("/memfd:") { return "a memfd (\(t))" }
        return t
    }

    /// Every missing piece found. `kernel` (the refusal) decides the queue-management
    /// verdict: EOPNOTSUPP from bind means the driver lacks the ops.
    public static func missingPieces(interface: String, ifindex: UInt32, queues: [UInt32], fd: Int32,
                                     kernel: NetlinkError?) -> [DevmemMissingPiece] {
        var missing: [DevmemMissingPiece] = []
        if !isDmabuf(fd) { missing.append(.notADmabuf(fd: fd, what: describe(fd))) }
        let driver = NetworkInterface.driver(name: interface)
        let errno = kernel?.kernelErrno
        if errno == .notSupported || driver == nil {
            missing.append(.noQueueManagement(interface: interface, driver: driver))
        }
        if !queues.isEmpty, var client = try? NetdevClient(), let listed = try? client.queues(ifindex: ifindex) {
            let rx = listed.filter { $0.type == .rx }.count
            for q in queues where Int(q) >= rx {
                missing.append(.noSuchQueue(interface: interface, queue: q, available: rx))
            }
        }
        var split: TCPDataSplit = .unknown
        if var ethtool = try? EthtoolClient(), let rings = try? ethtool.rings(ifindex: ifindex) { split = rings.tcpDataSplit }
        if split != .enabled { missing.append(.headerSplitOff(interface: interface, state: split)) }
        return missing
    }
}
