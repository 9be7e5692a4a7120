import Netmem
import NetmemDevice

/// Gives a delivered frame back when its token returns: each UMEM frame carries exactly
/// one fragment (the payload), so releasing the fragment recycles the whole frame into
/// the page pool, from where the RX thread refills the fill ring. Any thread.
final class XDPFrameReleaser: FragmentReleasing, @unchecked Sendable {
    let pool: PagePool
    init(pool: PagePool) { self.pool = pool }

    func releaseFragment(_ fragment: NetmemFragment) { pool.recycle(fragment.ref) }
}
