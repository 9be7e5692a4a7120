import SystemPackage

/// A device address (the driver's `CUdeviceptr`).
public typealias DeviceAddress = UInt64

/// An ordered queue of device work (the driver's `CUstream`).
public struct GPUStream: Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A marker in a stream whose completion can be queried (the driver's `CUevent`).
public struct GPUEvent: Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// The driver entry points Netmem's GPU logic needs: device memory, dma-buf export,
/// host registration, and asynchronous copies on streams whose completion is observed
/// through events. `CUDADriver` is the real one; `HostStandInDriver` does the same with
/// host memory and a worker thread so the logic above it runs everywhere.
///
/// Asynchronous copies read and write their host memory until their completion is
/// observed: the caller keeps it valid until then. All methods are thread-safe.
public protocol GPUDriver: AnyObject, Sendable {
    /// "cuda" or "standin".
    var kind: String { get }
    /// The device, in words ("NVIDIA H100 80GB HBM3 (device 0)").
    var deviceName: String { get }
    /// Whether `exportDmaBuf` can work on this driver and device.
    var supportsDmaBufExport: Bool { get }

    /// Allocates `size` bytes of device memory. Mirrors `cuMemAlloc`.
    func allocate(size: Int) throws(GPUError) -> DeviceAddress
    /// Frees memory from `allocate`. Mirrors `cuMemFree`.
    func free(_ address: DeviceAddress)
    /// A dma-buf fd for `size` bytes at `address` (the caller owns it). Mirrors
    /// `cuMemGetHandleForAddressRange(CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD)`.
    func exportDmaBuf(_ address: DeviceAddress, size: Int) throws(GPUError) -> FileDescriptor
    /// Pins host memory and maps it for the device; returns the device's address of its
    /// first byte. Mirrors `cuMemHostRegister(DEVICEMAP)` + `cuMemHostGetDevicePointer`.
    func registerHost(_ address: UnsafeMutableRawPointer, size: Int) throws(GPUError) -> DeviceAddress
    /// Mirrors `cuMemHostUnregister`.
    func unregisterHost(_ address: UnsafeMutableRawPointer)

    /// Mirrors `cuStreamCreate(CU_STREAM_NON_BLOCKING)`.
    func makeStream() throws(GPUError) -> GPUStream
    /// Waits for the stream's work, then destroys it. Mirrors `cuStreamDestroy`.
    func destroyStream(_ stream: GPUStream)
    /// Mirrors `cuMemcpyHtoDAsync`.
    func copy(to destination: DeviceAddress, from source: UnsafeRawPointer, count: Int, on stream: GPUStream) throws(GPUError)
    /// Mirrors `cuMemcpyDtoHAsync`.
    func copy(to destination: UnsafeMutableRawPointer, from source: DeviceAddress, count: Int, on stream: GPUStream) throws(GPUError)
    /// Mirrors `cuMemcpyDtoDAsync`.
    func copy(to destination: DeviceAddress, from source: DeviceAddress, count: Int, on stream: GPUStream) throws(GPUError)
    /// Waits until everything queued on the stream is done. Mirrors `cuStreamSynchronize`.
    func synchronize(_ stream: GPUStream) throws(GPUError)

    /// Mirrors `cuEventCreate(CU_EVENT_DISABLE_TIMING)`.
    func makeEvent() throws(GPUError) -> GPUEvent
    /// Marks the current end of the stream's work. Mirrors `cuEventRecord`.
    func record(_ event: GPUEvent, on stream: GPUStream) throws(GPUError)
    /// Whether the work before the event's last record is done (true for an event never
    /// recorded). Mirrors `cuEventQuery` (`CUDA_ERROR_NOT_READY` is false).
    func isComplete(_ event: GPUEvent) throws(GPUError) -> Bool
    /// Mirrors `cuEventSynchronize`.
    func wait(_ event: GPUEvent) throws(GPUError)
    /// Mirrors `cuEventDestroy`.
    func destroyEvent(_ event: GPUEvent)
}
