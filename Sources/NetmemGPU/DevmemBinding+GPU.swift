import Netmem
import NetmemDevice

extension DevmemBinding {
    /// The fragments as offsets in this binding's region (`regionID` the region's id), for
    /// fragments a receive path describes by their pool location (its own area ids and
    /// offsets, as the io_uring framer does). Fragments without a location are kept as
    /// they are. A location outside the binding is a programming error (it traps).
    public func regionFragments(_ fragments: [Fragment]) -> [Fragment] {
        fragments.map { f in
            guard let loc = f.location else { return f }
            var g = f
            g.regionOffset = regionOffset(of: loc)
            g.regionID = region.id
            return g
        }
    }
}
