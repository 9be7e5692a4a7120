import Netmem

/// A received message after header split: a linear part in host memory (readable:
/// headers, or small payloads) and the payload as fragments where it landed, possibly in
/// memory the CPU may not read (the kernel's skb with `skb_frags_readable`).
///
/// A message owns its fragments' tokens: they go back to the table that issued them
/// when the last copy of the message goes away, or at `release()` when it is the last
/// copy. Copies share one obligation, so giving back twice is impossible, and no copy
/// can read bytes that were already given back.
public struct Message: Sendable {
    private final class Storage: Sendable {
        let linear: [UInt8]
        let fragments: [Fragment]
        /// The regions the fragments lie in (usually one).
        let regions: [DeviceMemoryRegion]
        let returner: (any TokenReturning)?

        init(linear: [UInt8], fragments: [Fragment], regions: [DeviceMemoryRegion], returner: (any TokenReturning)?) {
            self.linear = linear
            self.fragments = fragments
            self.regions = regions
            self.returner = returner
        }

        /// The region a fragment names.
        func region(of f: Fragment) throws(DeviceMemoryError) -> DeviceMemoryRegion {
            if let r = regions.first, r.id == f.regionID { return r }
            for r in regions where r.id == f.regionID { return r }
            throw .exporter("fragment of region \(f.regionID), which the message does not name (it names \(regions.map(\.id)))")
        }

        deinit {
            guard let returner, !fragments.isEmpty else { return }
            if fragments.count == 1 {
                _ = try? returner.dontNeed([TokenRange(token: fragments[0].token)])
            } else {
                returner.giveBack(fragments.lazy.map(\.token))
            }
        }
    }

    private var storage: Storage

    /// A message whose fragments' tokens go back to `returner` when the message goes
    /// away. `region` is where the fragments lie (for reading and copying them); with
    /// `returner` nil the message owns nothing (a description, such as an empty payload).
    public init(linear: [UInt8] = [], fragments: [Fragment] = [], region: DeviceMemoryRegion? = nil,
                returningTokensTo returner: (any TokenReturning)? = nil) {
        storage = Storage(linear: linear, fragments: fragments, regions: region.map { [$0] } ?? [], returner: returner)
    }

    /// A message whose fragments lie in several regions (a receive region, and staging
    /// memory a receiver copied a few bytes into under pressure).
    public init(linear: [UInt8] = [], fragments: [Fragment], regions: [DeviceMemoryRegion],
                returningTokensTo returner: (any TokenReturning)?) {
        storage = Storage(linear: linear, fragments: fragments, regions: regions, returner: returner)
    }

    /// Readable bytes copied into host memory (protocol headers, or a small payload).
    public var linear: [UInt8] { storage.linear }
    /// Payload pieces in order.
    public var fragments: [Fragment] { storage.fragments }
    /// The region the fragments lie in (the first, when they lie in several).
    public var region: DeviceMemoryRegion? { storage.regions.first }
    /// Every region the fragments lie in.
    public var regions: [DeviceMemoryRegion] { storage.regions }
    /// Payload bytes across all fragments.
    public var payloadLength: Int { storage.fragments.reduce(0) { $0 + $1.length } }
    /// Whether the CPU may read the payload where it lies.
    public var isReadable: Bool { storage.fragments.isEmpty || storage.regions.allSatisfy { $0.access == .mapped } }

    /// Gives the tokens back now when this is the last copy of the message (returns
    /// true), else when the last copy goes away (returns false): bytes are never given
    /// back while any copy can still read them. Write `message.release()` as the last
    /// use of the value (or `consume message`), as with any owned resource.
    @discardableResult
    public consuming func release() -> Bool {
        isKnownUniquelyReferenced(&storage)
    }

    /// Calls `body` with the payload's bytes, one buffer per fragment, valid only inside
    /// `body`. Throws `DeviceMemoryError.unreadable` when the payload lies in memory the
    /// CPU may not read (copy it out with `copyPayload(into:)` instead).
    ///
    /// - Parameter body: Reads the buffers; they must not escape it.
    /// - Returns: What `body` returns.
    /// - Throws: `DeviceMemoryError.unreadable`, or `.wrongRegion` for a fragment of
    ///   another region.
    public func withUnsafePayload<R>(_ body: (PayloadBuffers) -> R) throws(DeviceMemoryError) -> R {
        let s = storage
        if s.fragments.isEmpty { return body(PayloadBuffers(bases: [], fragments: [])) }
        guard !s.regions.isEmpty else {
            throw .exporter("the message has payload fragments but names no region to read them from")
        }
        for r in s.regions where r.baseAddress == nil { throw .unreadable(regionID: r.id) }
        for f in s.fragments { try s.region(of: f).checkFragment(f) }
        let bases = s.regions.map { (id: $0.id, base: UnsafeRawPointer($0.baseAddress!)) }
        return withExtendedLifetime(s) { body(PayloadBuffers(bases: bases, fragments: s.fragments)) }
    }

    /// Copies the payload into the front of `destination`: memcpy for readable memory,
    /// the region's copy engine for device memory.
    ///
    /// - Returns: The bytes copied (`payloadLength`).
    /// - Throws: `DeviceMemoryError.outOfBounds` when `destination` is too small, or what
    ///   the region's copy throws.
    @discardableResult
    public func copyPayload(into destination: UnsafeMutableRawBufferPointer) throws(DeviceMemoryError) -> Int {
        let s = storage
        let total = payloadLength
        guard destination.count >= total else {
            throw .outOfBounds(offset: 0, length: total, regionSize: destination.count)
        }
        guard !s.fragments.isEmpty else { return 0 }
        var at = 0
        for f in s.fragments {
            try s.region(of: f).copy(f, into: UnsafeMutableRawBufferPointer(rebasing: destination[at..<(at + f.length)]))
            at += f.length
        }
        return at
    }

    /// The payload as a new array (a copy), from readable or device memory.
    public func payloadBytes() throws(DeviceMemoryError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: payloadLength)
        var failure: DeviceMemoryError?
        out.withUnsafeMutableBytes { raw in
            do throws(DeviceMemoryError) { try copyPayload(into: raw) } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }
}

/// The payload of a message as buffers, one per fragment, valid only inside the
/// `Message.withUnsafePayload` call that made them.
public struct PayloadBuffers: RandomAccessCollection {
    let bases: [(id: UInt32, base: UnsafeRawPointer)]
    let fragments: [Fragment]

    /// The first fragment's index, always 0.
    public var startIndex: Int { 0 }
    /// The number of fragments.
    public var endIndex: Int { fragments.count }
    /// The bytes of fragment `i`, valid only inside the `withUnsafePayload` call.
    public subscript(i: Int) -> UnsafeRawBufferPointer {
        let f = fragments[i]
        var base = bases[0].base
        if bases.count > 1 { for b in bases where b.id == f.regionID { base = b.base } }
        return UnsafeRawBufferPointer(start: base + Int(f.regionOffset), count: f.length)
    }
}
