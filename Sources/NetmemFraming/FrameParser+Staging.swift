import Netmem
import NetmemDevice

/// Collapsing a frame in progress into staging chunks, so the receive chunks it pins can
/// recycle under memory pressure.
extension FrameParser {
    // MARK: - Staging

    /// Copies the bytes of the frame being received that lie in receive chunks into
    /// chunks of `staging` (whose chunks `regions` locates) and drops those receive chunks'
    /// references, so they can recycle: what a kernel does when it collapses a receive
    /// queue under memory pressure (`tcp_collapse`). The frame is delivered as if nothing
    /// happened, its fragments partly in the staging region. Copies as much as the
    /// staging pool gives chunks for. Call on the staging pool's owner thread.
    ///
    /// - Returns: The bytes copied (0 when nothing was in receive chunks, or the staging
    ///   pool had no chunk).
    @discardableResult
    public mutating func collapse(into staging: PagePool, regions: RegionMap) -> Int {
        guard pending.contains(where: { !$0.staged }) else { return 0 }
        precondition(stagingRegions == nil || stagingRegions!.region === regions.region,
                     "a parser stages into one region")
        let size = staging.configuration.chunkSize
        var out: [Held] = []
        out.reserveCapacity(pending.count)
        var copied = 0
        var exhausted = false
        for h in pending {
            if h.staged || exhausted {
                out.append(h)
                continue
            }
            guard let source = h.location.ref.area.address(of: h.location.ref) else {
                out.append(h)  // not readable: framed mode never holds such pieces
                continue
            }
            var from = UnsafeRawPointer(source) + Int(h.location.offset)
            var left = Int(h.location.length)
            var remainder: NetmemFragment?
            while left > 0 {
                // Append to the staging piece just before, while its chunk has room (it is
                // this parser's alone: pending pieces have not been issued).
                if let last = out.last, last.staged, Int(last.location.offset + last.location.length) < size {
                    let room = size - Int(last.location.offset + last.location.length)
                    let take = min(room, left)
                    let dst = last.location.ref.area.address(of: last.location.ref)! + Int(last.location.offset + last.location.length)
                    dst.copyMemory(from: from, byteCount: take)
                    out[out.count - 1].location.length += UInt32(take)
                    from += take
                    left -= take
                    copied += take
                    continue
                }
                guard let chunk = staging.allocate() else {
                    exhausted = true
                    break
                }
                staging.setFragmentReferences(of: chunk, to: 1)
                out.append(Held(location: NetmemFragment(ref: chunk, offset: 0, length: 0), pool: staging, staged: true))
            }
            if left > 0 {
                // Out of staging: the rest of this piece stays where it is.
                remainder = NetmemFragment(ref: h.location.ref, offset: h.location.offset + h.location.length - UInt32(left),
                                           length: UInt32(left))
                out.append(Held(location: remainder!, pool: h.pool, staged: false))
            } else {
                h.pool.releaseFragment(h.location)
            }
        }
        pending = out
        if copied > 0 {
            stagingRegions = regions
            statistics.collapses += 1
            statistics.bytesStaged += copied
        }
        return copied
    }
}
