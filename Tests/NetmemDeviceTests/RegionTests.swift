import Glibc
import Netmem
@testable import NetmemDevice
import SystemPackage
import Testing

@Suite struct RegionTests {
    @Test(arguments: [1, 3, 64])
    func regionsWithSeveralSegmentsBindAndCoverEverySegment(segments: Int) throws {
        let size = 64 * 65536
        let region = try DeviceMemoryRegion.memfd(size: size, segments: segments)
        #expect(region.segments.count == segments)
        #expect(region.segments.reduce(0) { $0 + $1.length } == size)
        // Device addresses are not contiguous across segments.
        if segments > 1 {
            let s = region.segments
            #expect(s[1].deviceAddress != s[0].deviceAddress + UInt64(s[0].length))
        }
        let binding = try DevmemBinding(region: region, queues: [ReceiveQueue(interface: "test0", index: 0)],
                                        chunkSize: 4096, registry: BindingRegistry())
        #expect(binding.areas.count == segments)
        #expect(binding.chunkCount == size / 4096)
        // Every chunk can be allocated once, and each maps to a distinct region offset
        // that lies in the segment the area came from.
        var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: binding.chunkCount + 1)
        let n = refs.withUnsafeMutableBufferPointer { binding.allocateChunks(into: $0) }
        #expect(n == binding.chunkCount)
        let offsets = refs[0..<n].map { binding.regionOffset(of: NetmemFragment(ref: $0, offset: 0, length: 4096)) }
        #expect(Set(offsets).count == n)
        #expect(offsets.allSatisfy { $0 % 4096 == 0 && $0 < UInt64(size) })
        // The area's CPU address is the region's mapping at that offset.
        for (r, off) in zip(refs[0..<n], offsets).prefix(200) {
            #expect(r.area.address(of: r) == region.baseAddress! + Int(off))
        }
        for r in refs[0..<n] { _ = binding.releaseChunk(r) }
        #expect(binding.outstanding == 0)
    }

    @Test func deviceOnlyRegionIsUnreadableButCopiesOut() throws {
        let mapped = try DeviceMemoryRegion.memfd(size: 1 << 20)
        let pattern = (0..<100).map { UInt8($0) }
        let dst = mapped.baseAddress! + 5000
        pattern.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: 100) }
        // Import the same memfd as device-only memory.
        let deviceOnly = try DeviceMemoryRegion.importing(fd: mapped.fileDescriptor!, allowCPUAccess: false)
        #expect(deviceOnly.access == .none)
        #expect(deviceOnly.size == 1 << 20)
        let f = Fragment(regionOffset: 5000, length: 100, token: 0, regionID: deviceOnly.id)
        #expect(throws: DeviceMemoryError.unreadable(regionID: deviceOnly.id)) { _ = try deviceOnly.bytes(of: f) }
        var out = [UInt8](repeating: 0, count: 100)
        try out.withUnsafeMutableBytes { try deviceOnly.copy(f, into: $0) }
        #expect(out == pattern)
        // The mapped one reads in place; a fragment of the other region is refused.
        var same = f
        same.regionID = mapped.id
        let bytes = try mapped.bytes(of: same)
        #expect(Array(bytes) == pattern)
        #expect(throws: DeviceMemoryError.wrongRegion(fragmentRegion: deviceOnly.id, region: mapped.id)) { _ = try mapped.bytes(of: f) }
        // Out of bounds is a typed error.
        let bad = Fragment(regionOffset: UInt64(1 << 20) - 10, length: 100, token: 0, regionID: mapped.id)
        #expect(throws: DeviceMemoryError.self) { _ = try mapped.bytes(of: bad) }
    }

    /// Found by fuzz-devmem-cmsg: a kernel-reported offset near 2^64 made the error's
    /// description overflow (offset + length) and trap instead of printing.
    @Test func anOffsetNearTheTopOfTheAddressSpaceIsATypedErrorThatPrints() throws {
        let region = try DeviceMemoryRegion.memfd(size: 1 << 16)
        let f = Fragment(regionOffset: UInt64.max - 1, length: 4096, token: 0, regionID: region.id)
        do {
            _ = try region.bytes(of: f)
            Issue.record("a fragment at offset 2^64-2 was read")
        } catch {
            #expect(error == .outOfBounds(offset: UInt64.max - 1, length: 4096, regionSize: 1 << 16))
            #expect(error.description.contains("\(UInt64.max - 1)"))
        }
    }

    @Test func importingAnEmptyFileIsATypedError() throws {
        let fd = emptyFile()
        defer { close(fd) }
        #expect(throws: DeviceMemoryError.invalidSize(0)) {
            _ = try DeviceMemoryRegion.importing(fd: FileDescriptor(rawValue: fd), allowCPUAccess: true)
        }
    }

    @Test func segmentTablesAreValidated() throws {
        #expect(throws: DeviceMemoryError.self) { _ = try DeviceMemoryRegion.memfd(size: 8192, segments: 3) }
        #expect(throws: DeviceMemoryError.self) { _ = try DeviceMemoryRegion.memfd(size: 0) }
    }
}

/// An empty, already unlinked file.
func emptyFile() -> Int32 {
    let path = "/tmp/netmem-empty-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    unlink(path)
    return fd
}

@Suite struct ChunkAllocatorTests {
    @Test func firstFitRunsAndMerging() {
        var a = ChunkAllocator(chunksPerSegment: [8, 0, 4])
        #expect(a.totalCount == 12)
        let x = a.allocate(count: 3)!
        #expect(x.segment == 0 && x.chunk == 0)
        let y = a.allocate(count: 5)!
        #expect(y.segment == 0 && y.chunk == 3)
        // Segment 0 is full; a run of 4 comes from segment 2, a run of 5 fits nowhere.
        #expect(a.allocate(count: 5) == nil)
        let z = a.allocate(count: 4)!
        #expect(z.segment == 2 && z.chunk == 0)
        #expect(a.freeCount == 0)
        a.release(segment: 0, chunk: 4)
        a.release(segment: 0, chunk: 0, count: 3)
        // Chunks 0-2 and 4 free, 3 held: a run of 4 does not fit.
        #expect(a.allocate(count: 4) == nil)
        a.release(segment: 0, chunk: 3)
        a.release(segment: 0, chunk: 5, count: 3)
        a.release(segment: 2, chunk: 0, count: 4)
        #expect(a.isEntirelyFree)
        #expect(a.allocate(count: 8)! == (0, 0))
    }

    @Test func randomAllocationsAlwaysMergeBack() {
        var rng = SystemRandomNumberGenerator()
        var a = ChunkAllocator(chunksPerSegment: [50, 17, 33])
        var held: [(Int, Int, Int)] = []
        for _ in 0..<5000 {
            if Bool.random(using: &rng) || held.isEmpty {
                let n = Int.random(in: 1...6, using: &rng)
                if let r = a.allocate(count: n) { held.append((r.segment, r.chunk, n)) }
            } else {
                let (s, c, n) = held.remove(at: Int.random(in: 0..<held.count, using: &rng))
                a.release(segment: s, chunk: c, count: n)
            }
            #expect(a.freeCount + held.reduce(0) { $0 + $1.2 } == 100)
        }
        for (s, c, n) in held { a.release(segment: s, chunk: c, count: n) }
        #expect(a.isEntirelyFree)
    }

    @Test func doubleFreeTraps() async {
        await #expect(processExitsWith: .failure) {
            var a = ChunkAllocator(chunksPerSegment: [4])
            _ = a.allocate(count: 2)
            a.release(segment: 0, chunk: 0)
            a.release(segment: 0, chunk: 0)
        }
    }
}
