import Glibc
import Netmem
import NetmemDevice
import Synchronization
import SystemPackage

/// Device memory as a region: allocated with the driver and exported as a dma-buf
/// (`cuMemGetHandleForAddressRange`), so the kernel's devmem/zcrx paths can bind it. CPU
/// access is `.none`; `copy` reads it with a device-to-host copy. One segment: the
/// device's virtual addresses are contiguous even when the dma-buf's pages are not.
public final class CUDAExporter: RegionExporter, @unchecked Sendable {
    public let kind: String
    public let driver: any GPUDriver
    public let fileDescriptor: FileDescriptor?
    public let size: Int
    public let segments: [RegionSegment]
    public let baseAddress: UnsafeMutableRawPointer? = nil
    /// The device address of the region's first byte.
    public let deviceAddress: DeviceAddress
    private let stream: GPUStream
    private let copyLock = Mutex(())

    /// Host page size: the dma-buf export needs page-aligned sizes.
    public static let alignment = 4096

    /// `size` bytes of device memory (rounded up to a page). With `exportDmaBuf` (the
    /// default) the memory is exported as a dma-buf and the error says so when the
    /// driver or device cannot (`dmaBufUnsupported`); without it the region has no fd
    /// (enough for the bounce path's destination and for unpack buffers).
    public init(driver: any GPUDriver, size: Int, exportDmaBuf: Bool = true) throws(GPUError) {
        guard size > 0 else { throw .region(.invalidSize(size)) }
        let length = roundUp(size, Self.alignment)
        let address = try driver.allocate(size: length)
        var fd: FileDescriptor? = nil
        var stream: GPUStream? = nil
        do throws(GPUError) {
            if exportDmaBuf { fd = try driver.exportDmaBuf(address, size: length) }
            stream = try driver.makeStream()
        } catch {
            if let fd { _ = close(fd.rawValue) }
            driver.free(address)
            throw error
        }
        self.driver = driver
        kind = driver.kind == "cuda" ? "cuda" : "cuda-\(driver.kind)"
        fileDescriptor = fd
        self.size = length
        deviceAddress = address
        segments = [RegionSegment(offset: 0, deviceAddress: address, length: length)]
        self.stream = stream!
    }

    /// Copies out with a device-to-host copy and waits for it.
    public func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        guard destination.count > 0 else { return }
        do throws(GPUError) {
            try copyLock.withLockChecked { _ throws(GPUError) in
                try driver.copy(to: destination.baseAddress!, from: deviceAddress + UInt64(offset), count: destination.count, on: stream)
                try driver.synchronize(stream)
            }
        } catch {
            throw .exporter(error.description)
        }
    }

    /// Copies host bytes into the region at `offset` and waits (for tests, tools and
    /// loading files into GPU memory).
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(GPUError) {
        guard offset >= 0, offset <= size, bytes.count <= size - offset else {
            throw .region(.outOfBounds(offset: UInt64(max(offset, 0)), length: bytes.count, regionSize: size))
        }
        guard bytes.count > 0 else { return }
        try copyLock.withLockChecked { _ throws(GPUError) in
            try driver.copy(to: deviceAddress + UInt64(offset), from: bytes.baseAddress!, count: bytes.count, on: stream)
            try driver.synchronize(stream)
        }
    }

    deinit {
        driver.destroyStream(stream)
        if let fd = fileDescriptor { _ = close(fd.rawValue) }
        driver.free(deviceAddress)
    }
}

/// Pinned host memory as a region: a memfd, mapped, registered with the driver so the GPU
/// reads it in place (the segment's device address is the driver's mapping of it).
/// `.mapped`: the CPU reads and writes it too, and it can be the receive memory of the
/// io_uring path (a binding over it is the pool's provider).
public final class PinnedHostExporter: RegionExporter, @unchecked Sendable {
    public let kind: String
    public let driver: any GPUDriver
    public let size: Int
    public let segments: [RegionSegment]
    public let deviceAddress: DeviceAddress
    private let memory: HostMemfd

    public var fileDescriptor: FileDescriptor? { FileDescriptor(rawValue: memory.fd) }
    public var baseAddress: UnsafeMutableRawPointer? { memory.base }

    /// `size` bytes (rounded up to a page) of memfd memory, registered with the driver.
    public init(driver: any GPUDriver, size: Int) throws(GPUError) {
        guard size > 0 else { throw .region(.invalidSize(size)) }
        let length = roundUp(size, 4096)
        let memory = try HostMemfd(name: "netmem-pinned", length: length)
        let address = try driver.registerHost(memory.base, size: length)
        self.driver = driver
        self.memory = memory
        kind = driver.kind == "cuda" ? "cuda-pinned" : "\(driver.kind)-pinned"
        self.size = length
        deviceAddress = address
        segments = [RegionSegment(offset: 0, deviceAddress: address, length: length)]
    }

    public func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) {
        destination.copyMemory(from: UnsafeRawBufferPointer(start: memory.base + offset, count: destination.count))
    }

    deinit { driver.unregisterHost(memory.base) }
}

extension DeviceMemoryRegion {
    /// Device memory from `driver` (CPU access `.none`), exported as a dma-buf unless
    /// `exportDmaBuf` is false.
    public static func gpu(driver: any GPUDriver, size: Int, exportDmaBuf: Bool = true) throws(GPUError) -> DeviceMemoryRegion {
        let exporter = try CUDAExporter(driver: driver, size: size, exportDmaBuf: exportDmaBuf)
        do { return try DeviceMemoryRegion(exporter: exporter, allowCPUAccess: false) } catch { throw .region(error) }
    }

    /// Pinned host memory registered with `driver` (CPU access `.mapped`).
    public static func pinnedHost(driver: any GPUDriver, size: Int) throws(GPUError) -> DeviceMemoryRegion {
        let exporter = try PinnedHostExporter(driver: driver, size: size)
        do { return try DeviceMemoryRegion(exporter: exporter) } catch { throw .region(error) }
    }

    /// Calls `body` with the device address and length of each piece of
    /// `offset..<offset+length` (pieces split where segments end). Throws when a byte of the
    /// range is outside the region or between segments.
    func forEachDevicePiece(offset: UInt64, length: Int, _ body: (DeviceAddress, Int) throws(GPUError) -> Void) throws(GPUError) {
        guard length >= 0, offset <= UInt64(size), UInt64(length) <= UInt64(size) - offset else {
            throw .region(.outOfBounds(offset: offset, length: length, regionSize: size))
        }
        var at = Int(offset)
        let end = at + length
        let segs = segments
        while at < end {
            guard let s = segs.first(where: { at >= $0.offset && at < $0.offset + $0.length }) else {
                throw .region(.outOfBounds(offset: UInt64(at), length: end - at, regionSize: size))
            }
            let n = min(end, s.offset + s.length) - at
            try body(s.deviceAddress + UInt64(at - s.offset), n)
            at += n
        }
    }
}
