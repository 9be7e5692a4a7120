import Netmem
import SystemPackage

/// Where a pool chunk lies in its region: the one place that turns a receive path's
/// location (area, chunk, offset in the chunk) into region coordinates (region id,
/// offset in the region). A binding cuts a region's scatter-gather segments into one
/// area each; a region over plain host memory has one area at offset 0. Data paths ask
/// a `RegionMap` for every `Fragment` they make and never compute offsets themselves.
public struct RegionMap: Sendable {
    /// The region the areas lie in.
    public let region: DeviceMemoryRegion
    /// Areas by `areaID - firstArea`: the region offset of their chunk 0 and their chunk
    /// size as a shift, or `unmapped`.
    private let firstArea: UInt16
    private let bases: [UInt64]
    private let shifts: [UInt8]
    private static let unmapped = UInt64.max

    /// A map of `areas`, each starting at `offset` in `region`.
    ///
    /// - Throws: `DeviceMemoryError.invalidSegments` when an area runs past the region or
    ///   its chunk size is not a power of two, or when no area is given.
    public init(region: DeviceMemoryRegion, areas: [(area: NetmemArea, offset: Int)]) throws(DeviceMemoryError) {
        guard let lowest = areas.map(\.area.id).min(), let highest = areas.map(\.area.id).max() else {
            throw .invalidSegments("a region map needs at least one area")
        }
        var bases = [UInt64](repeating: Self.unmapped, count: Int(highest - lowest) + 1)
        var shifts = [UInt8](repeating: 0, count: bases.count)
        for (area, offset) in areas {
            let size = area.chunkSize
            guard size > 0, size & (size - 1) == 0 else {
                throw .invalidSegments("area \(area.id) has chunk size \(size), not a power of two")
            }
            guard offset >= 0, offset + area.chunkCount * size <= region.size else {
                throw .invalidSegments("area \(area.id) (\(area.chunkCount) × \(size) bytes at offset \(offset)) runs past the \(region.size)-byte region")
            }
            bases[Int(area.id - lowest)] = UInt64(offset)
            shifts[Int(area.id - lowest)] = UInt8(size.trailingZeroBitCount)
        }
        self.region = region
        firstArea = lowest
        self.bases = bases
        self.shifts = shifts
    }

    /// Whether chunks of the area `areaID` lie in this map's region.
    public func contains(areaID: UInt16) -> Bool {
        let i = Int(areaID) &- Int(firstArea)
        return i >= 0 && i < bases.count && bases[i] != Self.unmapped
    }

    /// The offset in the region of `location`'s first byte. Traps when the location's
    /// area is not in the map (a chunk of another provider: a programming error).
    public func regionOffset(of location: NetmemFragment) -> UInt64 {
        let i = Int(location.ref.areaID) &- Int(firstArea)
        guard i >= 0 && i < bases.count && bases[i] != Self.unmapped else {
            preconditionFailure("\(location) lies in area \(location.ref.areaID), which is not part of region \(region.id)")
        }
        return bases[i] + UInt64(location.ref.chunk) << UInt64(shifts[i]) + UInt64(location.offset)
    }

    /// The `Fragment` describing `location` with `token`.
    public func fragment(_ location: NetmemFragment, token: UInt32) -> Fragment {
        Fragment(regionOffset: regionOffset(of: location), length: Int(location.length), token: token,
                 regionID: region.id, location: location)
    }
}

extension RegionMap {
    /// A region over an area of plain host memory (a host, huge-page or shared-memory
    /// provider's), and its map: one segment, the area at offset 0. `owner` (the
    /// provider) is kept alive as long as the region.
    ///
    /// - Throws: `DeviceMemoryError.exporter` when the area is not readable.
    public init(hostArea area: NetmemArea, kind: String, fileDescriptor: FileDescriptor? = nil,
                keepingAlive owner: AnyObject & Sendable) throws(DeviceMemoryError) {
        let exporter = try MappedAreaExporter(area: area, kind: kind, fileDescriptor: fileDescriptor, owner: owner)
        try self.init(region: DeviceMemoryRegion(exporter: exporter), areas: [(area, 0)])
    }
}
