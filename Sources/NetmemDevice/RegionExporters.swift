import CNetmemLinux
import Glibc
import Netmem
import SystemPackage

/// The default exporter: a sealed memfd (huge-page backed when asked), mapped, cut into
/// one or more segments. Segments get device addresses with gaps between them, as a
/// scattered dma-buf would, so code that assumes one contiguous range fails in tests.
public final class MemfdExporter: RegionExporter, @unchecked Sendable {
    /// `RegionExporter` requirement: "memfd".
    public let kind = "memfd"
    /// The memfd, owned by the exporter and closed when it goes away.
    public let fileDescriptor: FileDescriptor?
    /// The region's size in bytes, as asked; the memfd may be larger (rounded up to huge pages).
    public let size: Int
    /// `segmentCount` segments covering the region, with a 1 MiB gap in device addresses after each.
    public let segments: [RegionSegment]
    /// The shared, pre-faulted mapping of the memfd.
    public let baseAddress: UnsafeMutableRawPointer?
    /// Whether the memfd is backed by 2 MiB huge pages (`MFD_HUGETLB`).
    public let hugePages: Bool

    /// A `size`-byte memfd cut into `segmentCount` segments of about equal length (each a
    /// multiple of `segmentAlignment`, the last takes the rest).
    public init(size: Int, segmentCount: Int = 1, hugePages: Bool = false, segmentAlignment: Int = 4096,
                name: String = "netmem-region") throws(DeviceMemoryError) {
        guard size > 0 else { throw .invalidSize(size) }
        guard segmentCount >= 1, segmentCount * segmentAlignment <= size else {
            throw .invalidSegments("\(segmentCount) segments of at least \(segmentAlignment) bytes do not fit \(size) bytes")
        }
        var length = size
        var flags = CNM_MFD_CLOEXEC | CNM_MFD_ALLOW_SEALING
        if hugePages {
            flags |= CNM_MFD_HUGETLB | CNM_MFD_HUGE_2MB
            length = (size + HugePageProvider.hugePageSize - 1) / HugePageProvider.hugePageSize * HugePageProvider.hugePageSize
        }
        let fd = cnm_memfd_create(name, flags)
        guard fd >= 0 else { throw .systemCall("memfd_create", Errno(rawValue: -fd)) }
        guard ftruncate(fd, off_t(length)) == 0 else {
            let e = Errno(rawValue: errno)
            close(fd)
            if hugePages {
                throw .core(.hugePagesUnavailable(requested: length / HugePageProvider.hugePageSize, free: HugePageProvider.freeHugePages()))
            }
            throw .systemCall("ftruncate", e)
        }
        _ = cnm_fcntl_add_seals(fd, CNM_F_SEAL_SHRINK | CNM_F_SEAL_GROW)
        var err: Int32 = 0
        // Populated up front: no page faults when data lands, no creeping resident size.
        guard let base = cnm_mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | CNM_MAP_POPULATE, fd, 0, &err) else {
            close(fd)
            throw .systemCall("mmap", Errno(rawValue: err))
        }
        fileDescriptor = FileDescriptor(rawValue: fd)
        self.size = size
        baseAddress = base
        self.hugePages = hugePages
        let per = size / segmentCount / segmentAlignment * segmentAlignment
        var segs: [RegionSegment] = []
        // Device addresses: a base with a 1 MiB gap after each segment.
        var device: UInt64 = 0x1_0000_0000
        for i in 0..<segmentCount {
            let off = i * per
            let len = i == segmentCount - 1 ? size - off : per
            segs.append(RegionSegment(offset: off, deviceAddress: device, length: len))
            device += UInt64(len) + (1 << 20)
        }
        segments = segs
        mappedLength = length
    }

    private let mappedLength: Int

    /// `RegionExporter` requirement: a memcpy from the mapping.
    public func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        guard let base = baseAddress else { throw .exporter("memfd region is not mapped") }
        destination.copyMemory(from: UnsafeRawBufferPointer(start: base + offset, count: destination.count))
    }

    deinit {
        if let b = baseAddress { munmap(b, mappedLength) }
        if let fd = fileDescriptor { close(fd.rawValue) }
    }
}

/// A region made from any fd the user hands in (a dma-buf from another driver, a memfd,
/// a file). The size comes from the fd; it is mapped only if the user allows it and the
/// fd can be mapped. Copies from an unmapped import use `pread`. The exporter owns a
/// duplicate of the fd, so the caller keeps theirs.
public final class ImportedFDExporter: RegionExporter, @unchecked Sendable {
    /// `RegionExporter` requirement: "import".
    public let kind = "import"
    /// The exporter's duplicate of the fd handed in, closed when the exporter goes away.
    public let fileDescriptor: FileDescriptor?
    /// The fd's size in bytes (`lseek(SEEK_END)`).
    public let size: Int
    /// One segment covering the whole fd, at device address 0.
    public let segments: [RegionSegment]
    /// The shared mapping of the fd (read-write, else read-only); nil when mapping was not
    /// allowed or failed.
    public let baseAddress: UnsafeMutableRawPointer?

    /// Duplicates `fd` and takes its size; maps it when `allowMapping` is true and the fd can
    /// be mapped. Throws `systemCall` when the duplicate or `lseek` fails and `invalidSize`
    /// for an empty fd.
    public init(fd: FileDescriptor, allowMapping: Bool) throws(DeviceMemoryError) {
        let dup = Glibc.fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0 else { throw .systemCall("fcntl(F_DUPFD_CLOEXEC)", Errno(rawValue: errno)) }
        // lseek(SEEK_END) gives the size of dma-bufs, memfds and files alike.
        let end = lseek(dup, 0, SEEK_END)
        guard end > 0 else {
            let e = Errno(rawValue: errno)
            close(dup)
            if end == 0 { throw .invalidSize(0) }
            throw .systemCall("lseek(SEEK_END)", e)
        }
        _ = lseek(dup, 0, SEEK_SET)
        size = Int(end)
        fileDescriptor = FileDescriptor(rawValue: dup)
        var base: UnsafeMutableRawPointer? = nil
        if allowMapping {
            var err: Int32 = 0
            base = cnm_mmap(nil, Int(end), PROT_READ | PROT_WRITE, MAP_SHARED, dup, 0, &err)
            if base == nil { base = cnm_mmap(nil, Int(end), PROT_READ, MAP_SHARED, dup, 0, &err) }
        }
        baseAddress = base
        segments = [RegionSegment(offset: 0, deviceAddress: 0, length: Int(end))]
    }

    /// `RegionExporter` requirement: reads with `pread`, so it works unmapped. Throws `systemCall`
    /// when `pread` fails and `exporter` on a short read.
    public func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        guard let fd = fileDescriptor else { throw .exporter("no file descriptor") }
        var done = 0
        while done < destination.count {
            let n = pread(fd.rawValue, destination.baseAddress! + done, destination.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw n == 0 ? .exporter("short read at offset \(offset + done)") : .systemCall("pread", Errno(rawValue: errno))
            }
            done += n
        }
    }

    deinit {
        if let b = baseAddress { munmap(b, size) }
        if let fd = fileDescriptor { close(fd.rawValue) }
    }
}

extension DeviceMemoryRegion {
    /// A memfd region (the default exporter).
    public static func memfd(size: Int, segments: Int = 1, hugePages: Bool = false, segmentAlignment: Int = 4096,
                             access: CPUAccess = .mapped) throws(DeviceMemoryError) -> DeviceMemoryRegion {
        try DeviceMemoryRegion(exporter: MemfdExporter(size: size, segmentCount: segments, hugePages: hugePages,
                                                       segmentAlignment: segmentAlignment),
                               allowCPUAccess: access == .mapped)
    }

    /// A region over an fd the user hands in (Netmem keeps its own duplicate).
    public static func importing(fd: FileDescriptor, allowCPUAccess: Bool) throws(DeviceMemoryError) -> DeviceMemoryRegion {
        try DeviceMemoryRegion(exporter: ImportedFDExporter(fd: fd, allowMapping: allowCPUAccess), allowCPUAccess: allowCPUAccess)
    }
}

/// A region over memory a provider already mapped (one of its areas): host pages, huge
/// pages or a shared memfd. It owns nothing itself; it keeps the provider alive.
public final class MappedAreaExporter: RegionExporter, Sendable {
    /// The name given at creation ("host", "hugepage", "memfd", …).
    public let kind: String
    /// The fd given at creation (a shared memfd's), not owned by the exporter; nil for none.
    public let fileDescriptor: FileDescriptor?
    /// The area's size in bytes: its chunk count times its chunk size.
    public let size: Int
    /// One segment covering the area, at the area's device base.
    public let segments: [RegionSegment]
    nonisolated(unsafe) public let baseAddress: UnsafeMutableRawPointer?
    private let owner: AnyObject & Sendable

    /// The memory of `area`, which `owner` keeps mapped.
    ///
    /// - Throws: `DeviceMemoryError.exporter` when the CPU may not read the area.
    public init(area: NetmemArea, kind: String, fileDescriptor: FileDescriptor? = nil,
                owner: AnyObject & Sendable) throws(DeviceMemoryError) {
        guard let base = area.baseAddress else {
            throw .exporter("area \(area.id) is not mapped for the CPU; a host region needs readable memory")
        }
        self.kind = kind
        self.fileDescriptor = fileDescriptor
        size = area.chunkCount * area.chunkSize
        baseAddress = base
        segments = [RegionSegment(offset: 0, deviceAddress: area.deviceBase, length: size)]
        self.owner = owner
    }

    /// `RegionExporter` requirement: a memcpy from the area's mapping.
    public func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        guard let base = baseAddress else { throw .exporter("region is not mapped") }
        destination.copyMemory(from: UnsafeRawBufferPointer(start: base + offset, count: destination.count))
    }
}
