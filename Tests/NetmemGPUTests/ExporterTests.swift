import Glibc
import Netmem
import NetmemDevice
@testable import NetmemGPU
import NetmemGPUStandIn
import Testing

@Suite struct ExporterTests {
    @Test func deviceRegionIsDeviceOnlyWithADmaBufAndCopiesThroughTheExporter() throws {
        let driver = HostStandInDriver()
        do {
            let region = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20)
            #expect(region.access == .none)
            #expect(region.baseAddress == nil)
            #expect(region.exporter.kind == "cuda-standin")
            #expect(region.segments.count == 1)
            let fd = try #require(region.fileDescriptor)
            #expect(lseek(fd.rawValue, 0, SEEK_END) == off_t(1 << 20))  // the dma-buf's size
            let exporter = try #require(region.exporter as? CUDAExporter)
            #expect(region.segments[0].deviceAddress == exporter.deviceAddress)
            let bytes = (0..<10_000).map { pattern(9, $0) }
            try bytes.withUnsafeBytes { try exporter.write($0, at: 12_345) }
            // The CPU may not read it; the region's copy goes through the exporter (DtoH).
            let fragment = Fragment(regionOffset: 12_345, length: 10_000, token: 0, regionID: region.id)
            #expect(throws: DeviceMemoryError.unreadable(regionID: region.id)) { _ = try region.bytes(of: fragment) }
            var out = [UInt8](repeating: 0, count: 10_000)
            try out.withUnsafeMutableBytes { try region.copy(fragment, into: $0) }
            #expect(out == bytes)
            #expect(throws: DeviceMemoryError.outOfBounds(offset: UInt64(1 << 20) - 10, length: 11, regionSize: 1 << 20)) {
                _ = try readRegion(region, offset: (1 << 20) - 10, count: 11)
            }
            #expect(throws: GPUError.self) { try bytes.withUnsafeBytes { try exporter.write($0, at: (1 << 20) - 100) } }
            #expect(driver.liveObjects.allocations == 1)
        }
        #expect(driver.liveObjects == (0, 0, 0, 0))
    }

    @Test func sizesRoundUpToAPage() throws {
        let driver = HostStandInDriver()
        let region = try DeviceMemoryRegion.gpu(driver: driver, size: 5000)
        #expect(region.size == 8192)
        #expect(throws: GPUError.region(.invalidSize(0))) { _ = try DeviceMemoryRegion.gpu(driver: driver, size: 0) }
    }

    @Test func withoutDmaBufExportTheErrorSaysSoAndNothingLeaks() throws {
        let driver = HostStandInDriver(dmaBuf: false)
        do {
            _ = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20)
            Issue.record("export succeeded on a driver without dma-buf")
        } catch {
            guard case .dmaBufUnsupported = error else { Issue.record("unexpected \(error)"); return }
            #expect(error.description.contains("CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED"))
        }
        #expect(driver.liveObjects == (0, 0, 0, 0))
        // Without export the memory still serves as a destination.
        let region = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        #expect(region.fileDescriptor == nil)
        #expect(region.access == .none)
    }

    @Test func pinnedHostRegionIsMappedAndTheDeviceReadsItInPlace() throws {
        let driver = HostStandInDriver()
        do {
            let region = try DeviceMemoryRegion.pinnedHost(driver: driver, size: 256 << 10)
            #expect(region.access == .mapped)
            #expect(region.exporter.kind == "standin-pinned")
            let base = try #require(region.baseAddress)
            for i in 0..<1000 { base.storeBytes(of: pattern(4, i), toByteOffset: 5000 + i, as: UInt8.self) }
            let device = region.segments[0].deviceAddress
            #expect(device != UInt64(UInt(bitPattern: base)))
            // The GPU's view of the same bytes, at the segment's device address.
            #expect(try readDevice(driver, device + 5000, count: 1000) == (0..<1000).map { pattern(4, $0) })
            // And the exporter's copy is a memcpy.
            #expect(try readRegion(region, offset: 5000, count: 1000) == (0..<1000).map { pattern(4, $0) })
            #expect(driver.liveObjects.registrations == 1)
        }
        #expect(driver.liveObjects == (0, 0, 0, 0))
    }

    /// Landing path 1: a pinned region bound as the receive memory. Fragments the pool
    /// hands out are where the GPU reads them (the fragment's region offset plus the
    /// segment's device address), with no copy.
    @Test func pinnedRegionAsReceiveMemoryLandsPayloadWhereTheGPUReadsIt() throws {
        let driver = HostStandInDriver()
        let region = try DeviceMemoryRegion.pinnedHost(driver: driver, size: 1 << 20)
        let queue = ReceiveQueue(interface: "gpu-test", index: 0)
        let binding = try DevmemBinding(region: region, queues: [queue], chunkSize: 65536, registry: BindingRegistry())
        let pool = try binding.makePool(for: queue, poolSize: 16, fragmentSize: 65536)
        let consumer = binding.makeConsumer(name: "pinned")
        var fragments: [Fragment] = []
        var rng = SplitMix64(seed: 11)
        for k in 0..<40 {
            let length = Int(rng.next() % 20_000) + 1
            let f = try #require(pool.allocateFragment(length: length))
            let p = try #require(binding.areas[0].address(of: f.ref)) + Int(f.offset)
            for i in 0..<length { p.storeBytes(of: pattern(k, i), toByteOffset: i, as: UInt8.self) }  // "the NIC wrote it"
            fragments.append(binding.deliver(f, from: pool, to: consumer))
        }
        for (k, f) in fragments.enumerated() {
            let seen = try readDevice(driver, region.segments[0].deviceAddress + f.regionOffset, count: f.length)
            #expect(seen == (0..<f.length).map { pattern(k, $0) })
        }
        _ = try consumer.dontNeed(fragments.map { TokenRange(token: $0.token) })
        pool.destroy()
        #expect(pool.inFlight == 0)
        #expect(binding.outstanding == 0)
    }
}
