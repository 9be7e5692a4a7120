import Glibc
import Netmem
import NetmemDevice
@testable import NetmemGPU
import NetmemGPUStandIn
import Testing

@Suite struct DriverTests {
    // Runs where libcuda.so.1 is absent (this machine, CI); skipped with this reason where
    // an NVIDIA driver is installed.
    @Test(.enabled(if: !CUDADriver.libraryLoads, "an NVIDIA driver is installed here: the no-driver error cannot be shown"))
    func cudaWithoutADriverSaysLibcudaIsNotFound() {
        #expect(!CUDADriver.isAvailable)
        do {
            _ = try CUDADriver(device: 0)
            Issue.record("CUDADriver opened without libcuda.so.1")
        } catch {
            guard case .driverNotFound = error else {
                Issue.record("expected driverNotFound, got \(error)")
                return
            }
            #expect(error.description.hasPrefix("libcuda.so.1 not found (no NVIDIA driver)"))
        }
        #expect(throws: GPUError.self) { _ = try GPUProviderSpec(parsing: "cuda:1").makeDriver() }
    }

    @Test func providerSpecsParse() throws {
        #expect(try GPUProviderSpec(parsing: "cuda") == GPUProviderSpec(backend: .cuda, device: 0))
        #expect(try GPUProviderSpec(parsing: "cuda:3") == GPUProviderSpec(backend: .cuda, device: 3))
        #expect(try GPUProviderSpec(parsing: "cuda:standin") == GPUProviderSpec(backend: .standIn, device: 0))
        for bad in ["cuda:", "cuda:x", "cuda:-1", "cuda:99999", "cuda:1.5", "host", "CUDA", "cuda:0:1", "cuda: 1"] {
            #expect(throws: GPUProviderSpec.ParseError(value: bad), "\(bad)") { _ = try GPUProviderSpec(parsing: bad) }
        }
        #expect(!GPUProviderSpec.isGPU("memfd"))
        #expect(GPUProviderSpec.ParseError(value: "cuda:x").description.contains("cuda:N"))
        // The stand-in is its own module: the spec does not make it.
        #expect(throws: GPUError.self) { _ = try GPUProviderSpec(parsing: "cuda:standin").makeDriver() }
    }

    @Test func standInCopiesInStreamOrderAndChecksAddresses() throws {
        let driver = HostStandInDriver()
        let a = try driver.allocate(size: 10_000)
        let b = try driver.allocate(size: 10_000)
        let stream = try driver.makeStream()
        let source = (0..<10_000).map { pattern(1, $0) }
        try source.withUnsafeBytes { try driver.copy(to: a, from: $0.baseAddress!, count: 10_000, on: stream) }
        try driver.copy(to: b + 100, from: a, count: 9_900, on: stream)
        try driver.synchronize(stream)
        #expect(try readDevice(driver, b + 100, count: 9_900) == Array(source[0..<9_900]))
        // Out of range, past the end, an address never allocated.
        #expect(throws: GPUError.invalidDeviceAddress(a + 9_999, count: 2)) {
            try driver.copy(to: b, from: a + 9_999, count: 2, on: stream)
        }
        #expect(throws: GPUError.invalidDeviceAddress(1, count: 1)) { try driver.copy(to: 1, from: a, count: 1, on: stream) }
        // Device addresses are not host addresses.
        #expect(try driver.hostAddress(of: a, count: 1) != UnsafeMutableRawPointer(bitPattern: UInt(a)))
        driver.destroyStream(stream)
        driver.free(a)
        driver.free(b)
        #expect(driver.liveObjects == (0, 0, 0, 0))
    }

    @Test func standInEventsCompleteOnlyWhenTheWorkerReachesThem() throws {
        let driver = HostStandInDriver()
        let a = try driver.allocate(size: 4096)
        let stream = try driver.makeStream()
        let event = try driver.makeEvent()
        #expect(try driver.isComplete(event))  // never recorded
        driver.pause()
        var host = [UInt8](repeating: 7, count: 4096)
        try host.withUnsafeBytes { try driver.copy(to: a, from: $0.baseAddress!, count: 4096, on: stream) }
        try driver.record(event, on: stream)
        for _ in 0..<100 { sched_yield() }
        #expect(try !driver.isComplete(event))
        #expect(driver.bytesCopied.load(ordering: .relaxed) == 0)
        driver.resume()
        try driver.wait(event)
        #expect(try driver.isComplete(event))
        #expect(driver.bytesCopied.load(ordering: .relaxed) == 4096)
        host = try readDevice(driver, a, count: 4096)
        #expect(host.allSatisfy { $0 == 7 })
        driver.destroyEvent(event)
        driver.destroyStream(stream)
        driver.free(a)
        #expect(driver.liveObjects == (0, 0, 0, 0))
    }

    @Test func standInInjectedCopyFailureIsTyped() throws {
        let driver = HostStandInDriver()
        let a = try driver.allocate(size: 64)
        let stream = try driver.makeStream()
        defer { driver.destroyStream(stream); driver.free(a) }
        driver.failCopy(after: 1)
        try driver.copy(to: a, from: a, count: 8, on: stream)
        #expect(throws: GPUError.injected("copy failure injected by the test")) { try driver.copy(to: a, from: a, count: 8, on: stream) }
        try driver.copy(to: a, from: a, count: 8, on: stream)
    }

    @Test func deviceRingWrapsAndReclaimsFromTheFront() {
        var ring = DeviceRing(capacity: 1024, alignment: 128)
        let a = ring.reserve(250)!  // 256
        let b = ring.reserve(400)!  // 512
        #expect(a.offset == 0 && b.offset == 256)
        #expect(ring.reserve(400) == nil)  // 256 left at the end
        let c = ring.reserve(256)!
        #expect(c.offset == 768)
        #expect(ring.reserve(1) == nil)
        ring.release(b.id)  // out of order: nothing reclaimed yet
        #expect(ring.used == 1024)
        #expect(ring.outstanding == 2)
        ring.release(a.id)
        #expect(ring.used == 256)
        let d = ring.reserve(600)!  // wraps to the start
        #expect(d.offset == 0)
        #expect(ring.reserve(200) == nil)
        ring.release(c.id)
        ring.release(d.id)
        #expect(ring.used == 0 && ring.outstanding == 0)
        #expect(ring.reserve(1025) == nil)
        let e = ring.reserve(1024)!
        #expect(e.offset == 0)  // an empty ring starts over
        ring.release(e.id)
        let z = ring.reserve(0)!  // an empty message takes no space
        #expect(ring.used == 0 && ring.outstanding == 1)
        ring.release(z.id)
    }

    // Real GPU: only where a CUDA device is present (skipped here with this reason).
    @Test(.enabled(if: CUDADriver.isAvailable, "no CUDA device: libcuda.so.1 not found or no GPU"))
    func realGPUExportsDeviceMemoryAsDmaBufAndCopies() throws {
        let driver = try CUDADriver(device: 0)
        let region = try DeviceMemoryRegion.gpu(driver: driver, size: 4 << 20, exportDmaBuf: driver.supportsDmaBufExport)
        #expect(region.access == .none)
        if let fd = region.fileDescriptor { #expect(lseek(fd.rawValue, 0, SEEK_END) == off_t(region.size)) }
        let exporter = region.exporter as! CUDAExporter
        let bytes = (0..<65536).map { pattern(3, $0) }
        try bytes.withUnsafeBytes { try exporter.write($0, at: 4096) }
        #expect(try readRegion(region, offset: 4096, count: 65536) == bytes)
        let pinned = try DeviceMemoryRegion.pinnedHost(driver: driver, size: 1 << 20)
        #expect(pinned.access == .mapped)
    }
}
