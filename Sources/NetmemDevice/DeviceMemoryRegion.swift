import Glibc
import Netmem
import Synchronization
import SystemPackage

/// One contiguous piece of a region as the device sees it: a device address and a
/// length, at an offset in the region. Mirrors one entry of a dma-buf's scatter-gather
/// table; segments need not be contiguous in device address space.
public struct RegionSegment: Sendable, Hashable {
    /// Offset of the segment's first byte from the start of the region.
    public var offset: Int
    /// Where the device sees the segment.
    public var deviceAddress: UInt64
    /// The segment's length in bytes.
    public var length: Int

    /// A segment of `length` bytes at `offset` in the region, seen by the device at `deviceAddress`.
    public init(offset: Int, deviceAddress: UInt64, length: Int) {
        self.offset = offset
        self.deviceAddress = deviceAddress
        self.length = length
    }
}

/// Whether the CPU may touch a region's bytes.
public enum CPUAccess: Sendable, Equatable {
    /// Mapped: the CPU may read and write it.
    case mapped
    /// Device only: reading it throws `unreadable`; copying goes through the exporter.
    case none
}

/// Errors of regions, bindings and fragments.
public enum DeviceMemoryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The fragment lies in memory the CPU may not read (the kernel's
    /// `skb_frags_readable` is false); copy it out with the region's `copy`.
    case unreadable(regionID: UInt32)
    /// An offset/length outside the region.
    case outOfBounds(offset: UInt64, length: Int, regionSize: Int)
    /// A fragment of another region was given to this one.
    case wrongRegion(fragmentRegion: UInt32, region: UInt32)
    /// A segment table that does not fit the region (overlaps, past the end, empty).
    case invalidSegments(String)
    case invalidSize(Int)
    /// The region is already bound to this queue (the kernel's -EEXIST).
    case alreadyBound(queue: ReceiveQueue)
    /// The queue already has a binding (the kernel's -EBUSY).
    case queueBusy(queue: ReceiveQueue, bindingID: UInt32)
    /// A queue the binding does not cover.
    case notBound(queue: ReceiveQueue)
    case unbound(bindingID: UInt32)
    case noQueues
    /// The exporter could not do what was asked.
    case exporter(String)
    case systemCall(String, Errno)
    case core(NetmemError)

    public var description: String {
        switch self {
        case let .unreadable(id):
            return "region \(id) is device memory the CPU may not read; copy the fragment out with the region's copy method"
        case let .outOfBounds(off, len, size):
            // The offset and length come from a peer or the kernel: describe them as given,
            // without arithmetic that could overflow.
            return "\(len) bytes at offset \(off) are outside the \(size)-byte region"
        case let .wrongRegion(f, r):
            return "the fragment lies in region \(f), not in region \(r); read it through the region it names"
        case let .invalidSegments(why): return "invalid segment table: \(why)"
        case let .invalidSize(n): return "invalid region size \(n): it must be positive"
        case let .alreadyBound(q): return "the region is already bound to \(q) (EEXIST)"
        case let .queueBusy(q, b): return "\(q) already has binding \(b) (EBUSY); unbind it first"
        case let .notBound(q): return "\(q) is not covered by this binding"
        case let .unbound(id): return "binding \(id) is unbound"
        case .noQueues: return "a binding needs at least one receive queue"
        case let .exporter(why): return "exporter: \(why)"
        case let .systemCall(call, e): return "\(call) failed: \(e)"
        case let .core(e): return e.description
        }
    }
}

/// Makes the memory behind a region and copies out of it. Memfd and imported fds are
/// exporters; a GPU exporter implements the same protocol. Mirrors the dma-buf exporter
/// side: the region keeps the exporter alive as long as it exists.
public protocol RegionExporter: AnyObject, Sendable {
    /// A short name: "memfd", "import", "cuda", …
    var kind: String { get }
    /// The dma-buf (or memfd) file descriptor, owned by the exporter.
    var fileDescriptor: FileDescriptor? { get }
    var size: Int { get }
    /// The scatter-gather table.
    var segments: [RegionSegment] { get }
    /// The CPU mapping of the whole region, or nil for device-only memory.
    var baseAddress: UnsafeMutableRawPointer? { get }
    /// Copies `destination.count` bytes starting at `offset` out of the region (a device
    /// copy engine for device memory). Bounds are checked by the region.
    func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError)
}

/// An exported buffer: fd, size, scatter-gather segments and CPU access. Mirrors a
/// dma-buf as the kernel's devmem code sees it.
public final class DeviceMemoryRegion: Sendable, CustomStringConvertible {
    /// The region's identifier, unique in the process; fragments name their region by it
    /// (`Fragment.regionID`, the kernel's `dmabuf_id`).
    public let id: UInt32
    /// The exporter that made the memory; the region keeps it alive.
    public let exporter: any RegionExporter
    /// Whether the CPU may touch the bytes, fixed when the region is made.
    public let access: CPUAccess

    static let nextID = Atomic<UInt32>(1)

    /// Wraps an exporter's memory. The region is `.mapped` only when the exporter has a
    /// CPU mapping and `allowCPUAccess` is true.
    public init(exporter: any RegionExporter, allowCPUAccess: Bool = true) throws(DeviceMemoryError) {
        try Self.validate(exporter.segments, size: exporter.size)
        self.exporter = exporter
        access = allowCPUAccess && exporter.baseAddress != nil ? .mapped : .none
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// The region's size in bytes, as the exporter reports it.
    public var size: Int { exporter.size }
    /// The exporter's scatter-gather table, validated when the region was made.
    public var segments: [RegionSegment] { exporter.segments }
    /// The exporter's dma-buf (or memfd) file descriptor, owned by the exporter; nil when it has none.
    public var fileDescriptor: FileDescriptor? { exporter.fileDescriptor }

    /// The CPU address of the region's first byte; nil when the CPU may not read it.
    public var baseAddress: UnsafeMutableRawPointer? { access == .mapped ? exporter.baseAddress : nil }

    /// The readable bytes of a fragment of this region, valid until the fragment's token
    /// is given back (prefer `Message.withUnsafePayload`, which scopes them).
    ///
    /// - Throws: `wrongRegion` for a fragment of another region, `outOfBounds` for one
    ///   outside this region, `unreadable` for a region the CPU may not read (the
    ///   kernel's `skb_frags_readable`).
    public func bytes(of fragment: Fragment) throws(DeviceMemoryError) -> UnsafeRawBufferPointer {
        try checkFragment(fragment)
        guard let base = baseAddress else { throw .unreadable(regionID: id) }
        return UnsafeRawBufferPointer(start: base + Int(fragment.regionOffset), count: fragment.length)
    }

    /// Copies a fragment's bytes out: memcpy for a mapped region, the exporter's copy
    /// engine otherwise.
    ///
    /// - Throws: `wrongRegion` for a fragment of another region, `outOfBounds` for one
    ///   outside this region, or what the exporter's copy throws.
    public func copy(_ fragment: Fragment, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        try checkFragment(fragment)
        try copy(from: fragment.regionOffset, length: fragment.length, into: destination)
    }

    /// Checks that a fragment names this region and lies inside it.
    func checkFragment(_ fragment: Fragment) throws(DeviceMemoryError) {
        guard fragment.regionID == id else { throw .wrongRegion(fragmentRegion: fragment.regionID, region: id) }
        try checkBounds(offset: fragment.regionOffset, length: fragment.length)
    }

    /// Copies `length` bytes at `offset` into the front of `destination`.
    public func copy(from offset: UInt64, length: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        try checkBounds(offset: offset, length: length)
        precondition(destination.count >= length, "copy destination of \(destination.count) bytes is smaller than \(length)")
        let dst = UnsafeMutableRawBufferPointer(rebasing: destination[0..<length])
        if let base = baseAddress {
            dst.copyMemory(from: UnsafeRawBufferPointer(start: base + Int(offset), count: length))
        } else {
            try exporter.copy(from: Int(offset), into: dst)
        }
    }

    func checkBounds(offset: UInt64, length: Int) throws(DeviceMemoryError) {
        guard length >= 0, offset <= UInt64(size), UInt64(length) <= UInt64(size) - offset else {
            throw .outOfBounds(offset: offset, length: length, regionSize: size)
        }
    }

    static func validate(_ segments: [RegionSegment], size: Int) throws(DeviceMemoryError) {
        guard size > 0 else { throw .invalidSize(size) }
        guard !segments.isEmpty else { throw .invalidSegments("no segments") }
        var end = 0
        for (i, s) in segments.sorted(by: { $0.offset < $1.offset }).enumerated() {
            guard s.length > 0 else { throw .invalidSegments("segment \(i) is empty") }
            guard s.offset >= end else { throw .invalidSegments("segment at offset \(s.offset) overlaps the one before") }
            guard s.offset + s.length <= size else {
                throw .invalidSegments("segment at offset \(s.offset) of \(s.length) bytes runs past the \(size)-byte region")
            }
            end = s.offset + s.length
        }
    }

    public var description: String {
        "region \(id) (\(exporter.kind)): \(size) bytes, \(segments.count) segment(s), "
            + (access == .mapped ? "mapped" : "device only")
    }
}
