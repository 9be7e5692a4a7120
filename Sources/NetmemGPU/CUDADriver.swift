import CNetmemCUDA
import Glibc
import SystemPackage

/// The CUDA driver API, loaded at run time (`dlopen("libcuda.so.1")`, never linked), on
/// one device's primary context. Every call makes that context current on the calling
/// thread first (cached per thread in the shim).
public final class CUDADriver: GPUDriver, @unchecked Sendable {
    public let kind = "cuda"
    public let ordinal: Int
    public let deviceName: String
    /// The driver's version as `cuDriverGetVersion` reports it (e.g. 13000 for 13.0).
    public let driverVersion: Int32
    public let supportsDmaBufExport: Bool
    private let device: Int32
    private let context: UInt64

    /// Loads the driver and retains device `ordinal`'s primary context. Throws
    /// `driverNotFound` ("libcuda.so.1 not found (no NVIDIA driver)"), `missingEntryPoint`,
    /// `noDevice`, `noSuchDevice`; with `requireDmaBuf`, also `dmaBufUnsupported` when the
    /// device cannot export dma-bufs (`CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED` is 0).
    public init(device ordinal: Int = 0, requireDmaBuf: Bool = false) throws(GPUError) {
        let info = try Self.probe()
        guard info.deviceCount > 0 else { throw .noDevice }
        guard ordinal >= 0, ordinal < info.deviceCount else { throw .noSuchDevice(ordinal: ordinal, count: info.deviceCount) }
        var dev: Int32 = 0
        try Self.check(cnm_cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet")
        self.ordinal = ordinal
        device = dev
        deviceName = Self.name(of: dev) + " (device \(ordinal))"
        driverVersion = info.version
        supportsDmaBufExport = Self.dmaBufSupported(dev)
        if requireDmaBuf && !supportsDmaBufExport { throw .dmaBufUnsupported(device: deviceName) }
        var ctx: UInt64 = 0
        try Self.check(cnm_cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain")
        context = ctx
    }

    deinit { _ = cnm_cuDevicePrimaryCtxRelease(device) }

    // MARK: Probing

    /// What the driver reports without opening a context.
    public struct Probe: Sendable {
        public var version: Int32
        public var deviceCount: Int
    }

    /// Loads the driver and calls `cuInit`; the typed error says what is missing.
    public static func probe() throws(GPUError) -> Probe {
        var err = [CChar](repeating: 0, count: 256)
        let r = cnm_cuda_load(&err, err.count)
        let text = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if r == -1 { throw .driverNotFound(text) }
        if r == -2 { throw .missingEntryPoint(text) }
        let initResult = cnm_cuInit(0)
        if initResult == CNM_CUDA_ERROR_NO_DEVICE { throw .noDevice }
        try check(initResult, "cuInit")
        var version: Int32 = 0
        try check(cnm_cuDriverGetVersion(&version), "cuDriverGetVersion")
        var count: Int32 = 0
        let c = cnm_cuDeviceGetCount(&count)
        if c == CNM_CUDA_ERROR_NO_DEVICE { return Probe(version: version, deviceCount: 0) }
        try check(c, "cuDeviceGetCount")
        return Probe(version: version, deviceCount: Int(count))
    }

    /// Whether libcuda.so.1 loads with every entry point Netmem needs (a device may still
    /// be missing).
    public static var libraryLoads: Bool {
        var err = [CChar](repeating: 0, count: 256)
        return cnm_cuda_load(&err, err.count) == 0
    }

    /// Whether a CUDA device can be used here (the driver loads and sees a device).
    public static var isAvailable: Bool {
        guard let p = try? probe() else { return false }
        return p.deviceCount > 0
    }

    /// Device `ordinal`'s name and whether it can export dma-bufs, without a context.
    public static func describeDevice(_ ordinal: Int) throws(GPUError) -> (name: String, dmaBuf: Bool) {
        var dev: Int32 = 0
        try check(cnm_cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet")
        return (name(of: dev), dmaBufSupported(dev))
    }

    static func name(of dev: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard cnm_cuDeviceGetName(&buf, Int32(buf.count), dev) == CNM_CUDA_SUCCESS else { return "unknown GPU" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func dmaBufSupported(_ dev: Int32) -> Bool {
        guard cnm_cuda_has_dmabuf_export() == 1 else { return false }
        var v: Int32 = 0
        return cnm_cuDeviceGetAttribute(&v, CNM_CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, dev) == CNM_CUDA_SUCCESS && v != 0
    }

    /// Converts a CUresult into `GPUError.driver` (once, at the C boundary).
    static func check(_ r: Int32, _ call: String) throws(GPUError) {
        guard r != CNM_CUDA_SUCCESS else { return }
        if r == CNM_CUDA_ERROR_NOT_LOADED { throw .missingEntryPoint(call) }
        if r == CNM_CUDA_ERROR_OUT_OF_MEMORY { throw .outOfDeviceMemory(requested: 0) }
        let name = cnm_cuGetErrorName(r).map { String(cString: $0) } ?? "CUresult \(r)"
        let text = cnm_cuGetErrorString(r).map { String(cString: $0) } ?? "unknown error"
        throw .driver(call: call, code: r, name: name, message: text)
    }

    @inline(__always)
    private func current() throws(GPUError) {
        try Self.check(cnm_cuda_make_current(context), "cuCtxSetCurrent")
    }

    // MARK: GPUDriver

    public func allocate(size: Int) throws(GPUError) -> DeviceAddress {
        guard size > 0 else { throw .invalidArgument("device allocation of \(size) bytes") }
        try current()
        var p: UInt64 = 0
        let r = cnm_cuMemAlloc(&p, size)
        if r == CNM_CUDA_ERROR_OUT_OF_MEMORY { throw .outOfDeviceMemory(requested: size) }
        try Self.check(r, "cuMemAlloc")
        return p
    }

    public func free(_ address: DeviceAddress) {
        guard (try? current()) != nil else { return }
        _ = cnm_cuMemFree(address)
    }

    public func exportDmaBuf(_ address: DeviceAddress, size: Int) throws(GPUError) -> FileDescriptor {
        guard supportsDmaBufExport else { throw .dmaBufUnsupported(device: deviceName) }
        try current()
        var fd: Int32 = -1
        let r = cnm_cuMemGetHandleForAddressRange(&fd, address, size, CNM_CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0)
        if r == CNM_CUDA_ERROR_NOT_SUPPORTED { throw .dmaBufUnsupported(device: deviceName) }
        try Self.check(r, "cuMemGetHandleForAddressRange")
        return FileDescriptor(rawValue: fd)
    }

    public func registerHost(_ address: UnsafeMutableRawPointer, size: Int) throws(GPUError) -> DeviceAddress {
        try current()
        try Self.check(cnm_cuMemHostRegister(address, size, UInt32(CNM_CU_MEMHOSTREGISTER_PORTABLE | CNM_CU_MEMHOSTREGISTER_DEVICEMAP)),
                       "cuMemHostRegister")
        var d: UInt64 = 0
        let r = cnm_cuMemHostGetDevicePointer(&d, address, 0)
        if r != CNM_CUDA_SUCCESS {
            _ = cnm_cuMemHostUnregister(address)
            try Self.check(r, "cuMemHostGetDevicePointer")
        }
        return d
    }

    public func unregisterHost(_ address: UnsafeMutableRawPointer) {
        guard (try? current()) != nil else { return }
        _ = cnm_cuMemHostUnregister(address)
    }

    public func makeStream() throws(GPUError) -> GPUStream {
        try current()
        var s: UInt64 = 0
        try Self.check(cnm_cuStreamCreate(&s, UInt32(CNM_CU_STREAM_NON_BLOCKING)), "cuStreamCreate")
        return GPUStream(rawValue: s)
    }

    public func destroyStream(_ stream: GPUStream) {
        guard (try? current()) != nil else { return }
        _ = cnm_cuStreamSynchronize(stream.rawValue)
        _ = cnm_cuStreamDestroy(stream.rawValue)
    }

    public func copy(to destination: DeviceAddress, from source: UnsafeRawPointer, count: Int, on stream: GPUStream) throws(GPUError) {
        try current()
        try Self.check(cnm_cuMemcpyHtoDAsync(destination, source, count, stream.rawValue), "cuMemcpyHtoDAsync")
    }

    public func copy(to destination: UnsafeMutableRawPointer, from source: DeviceAddress, count: Int, on stream: GPUStream) throws(GPUError) {
        try current()
        try Self.check(cnm_cuMemcpyDtoHAsync(destination, source, count, stream.rawValue), "cuMemcpyDtoHAsync")
    }

    public func copy(to destination: DeviceAddress, from source: DeviceAddress, count: Int, on stream: GPUStream) throws(GPUError) {
        try current()
        try Self.check(cnm_cuMemcpyDtoDAsync(destination, source, count, stream.rawValue), "cuMemcpyDtoDAsync")
    }

    public func synchronize(_ stream: GPUStream) throws(GPUError) {
        try current()
        try Self.check(cnm_cuStreamSynchronize(stream.rawValue), "cuStreamSynchronize")
    }

    public func makeEvent() throws(GPUError) -> GPUEvent {
        try current()
        var e: UInt64 = 0
        try Self.check(cnm_cuEventCreate(&e, UInt32(CNM_CU_EVENT_DISABLE_TIMING)), "cuEventCreate")
        return GPUEvent(rawValue: e)
    }

    public func record(_ event: GPUEvent, on stream: GPUStream) throws(GPUError) {
        try current()
        try Self.check(cnm_cuEventRecord(event.rawValue, stream.rawValue), "cuEventRecord")
    }

    public func isComplete(_ event: GPUEvent) throws(GPUError) -> Bool {
        try current()
        let r = cnm_cuEventQuery(event.rawValue)
        if r == CNM_CUDA_ERROR_NOT_READY { return false }
        try Self.check(r, "cuEventQuery")
        return true
    }

    public func wait(_ event: GPUEvent) throws(GPUError) {
        try current()
        try Self.check(cnm_cuEventSynchronize(event.rawValue), "cuEventSynchronize")
    }

    public func destroyEvent(_ event: GPUEvent) {
        guard (try? current()) != nil else { return }
        _ = cnm_cuEventDestroy(event.rawValue)
    }
}
