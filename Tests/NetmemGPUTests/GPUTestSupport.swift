import Glibc
import Netmem
import NetmemDevice
@testable import NetmemGPU

/// Deterministic bytes for position `i` of stream `seed`.
func pattern(_ seed: Int, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: (i &* 131) ^ (seed &* 29) ^ (i >> 8)) }

/// Reads `count` bytes at a device address through the driver (a DtoH copy, waited for).
func readDevice(_ driver: any GPUDriver, _ address: DeviceAddress, count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    guard count > 0 else { return out }
    let stream = try driver.makeStream()
    defer { driver.destroyStream(stream) }
    try out.withUnsafeMutableBytes { b in
        try driver.copy(to: b.baseAddress!, from: address, count: count, on: stream)
        try driver.synchronize(stream)
    }
    return out
}

/// The region's bytes through its copy method (the exporter's DtoH copy when unmapped).
func readRegion(_ region: DeviceMemoryRegion, offset: Int, count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    try out.withUnsafeMutableBytes { try region.copy(from: UInt64(offset), length: count, into: $0) }
    return out
}

/// A host pool with fragment support and a token table, as the receive path has them.
struct HostReceiveFixture {
    let provider: HostPageProvider
    let pool: PagePool
    let table: TokenTable
    let regions: RegionMap

    init(chunkSize: Int = 65536, chunks: Int = 64, fragmentSize: Int = 65536) throws {
        provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, fragmentSize: fragmentSize, name: "gpu-test"))
        table = TokenTable(name: "gpu-test")
        regions = try RegionMap(hostArea: provider.area, kind: "host", keepingAlive: provider)
    }

    /// A message of received fragments that owns their tokens.
    func message(_ fragments: [Fragment]) -> Message {
        Message(fragments: fragments, region: regions.region, returningTokensTo: table)
    }

    /// A received fragment of `length` bytes filled with `pattern(seed, …)`.
    func receive(length: Int, seed: Int) -> Fragment? {
        guard let f = pool.allocateFragment(length: length) else { return nil }
        let p = f.ref.area.address(of: f.ref)! + Int(f.offset)
        for i in 0..<length { p.storeBytes(of: pattern(seed, i), toByteOffset: i, as: UInt8.self) }
        return table.issue(f, owner: pool, regions: regions)
    }
}
