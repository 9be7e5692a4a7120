import Netmem

/// Where one piece of received payload landed, and the token that gives it back.
/// Mirrors the kernel's `struct dmabuf_cmsg` (`frag_offset`, `frag_size`, `frag_token`,
/// `dmabuf_id`).
///
/// Coordinates have one owner: `regionID` names a `DeviceMemoryRegion` and
/// `regionOffset` is the offset *in that region*. Receive paths get both from a
/// `RegionMap` (or from the kernel, for devmem TCP); they never compute them.
public struct Fragment: Sendable, Hashable, CustomStringConvertible {
    /// Offset of the payload from the start of its region.
    public var regionOffset: UInt64
    /// Payload bytes.
    public var length: Int
    /// The token that returns this fragment (`dontNeed`), scoped to the table that issued it.
    public var token: UInt32
    /// The region the offset is in (`DeviceMemoryRegion.id`; the kernel's `dmabuf_id`).
    public var regionID: UInt32
    /// The chunk holding the bytes and where in it, when a Netmem pool holds it (nil for
    /// fragments the kernel's own page pool holds, as with devmem TCP).
    public var location: NetmemFragment?

    /// A fragment from its coordinates; receive paths take them from a `RegionMap` or the kernel.
    public init(regionOffset: UInt64, length: Int, token: UInt32, regionID: UInt32, location: NetmemFragment? = nil) {
        self.regionOffset = regionOffset
        self.length = length
        self.token = token
        self.regionID = regionID
        self.location = location
    }

    public var description: String { "fragment(token \(token), region \(regionID) +\(regionOffset), \(length) bytes)" }
}
