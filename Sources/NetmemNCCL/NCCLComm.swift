import Netmem
import Synchronization

/// What send and receive comms share: the context they came from, the requests, the
/// first error (after which every request and call fails with it), and the memory NCCL
/// registered on them.
class NCCLComm: @unchecked Sendable {
    let context: NCCLContext
    let configuration: NCCLConfiguration
    /// For logs: "send comm 3 to 10.0.0.2:43211".
    let label: String
    private(set) var requests: NCCLRequestPool!
    private let failure = Mutex<NCCLError?>(nil)
    /// Whether the first error was the peer's orderly close with nothing outstanding.
    private let closedByPeer = Atomic<Bool>(false)
    /// Memory registered with `regMr`; the generation changes with every change.
    let regions = Mutex<[NCCLMemoryRegion]>([])
    let regionGeneration = Atomic<UInt64>(0)

    init(context: NCCLContext, label: String, kind: NCCLRequest.Kind) {
        self.context = context
        self.configuration = context.configuration
        self.label = label
        requests = NCCLRequestPool(kind: kind, comm: self, count: NCCLPlugin.requestsPerComm)
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    /// The first error, if the comm failed.
    var error: NCCLError? { failure.withLockChecked { $0 } }

    /// Records the comm's first error (logged once, as a warning unless `quietly`: an
    /// orderly close by the peer with nothing outstanding) and fails every request in flight.
    func fail(_ error: NCCLError, quietly: Bool = false) {
        let first = failure.withLockChecked { f -> Bool in
            guard f == nil else { return false }
            f = error
            return true
        }
        if first {
            closedByPeer.store(quietly, ordering: .relaxed)
            context.log(quietly ? .info : .warn, "\(label): \(error.message)")
        }
        requests.failAll(failure.withLockChecked { $0! })
    }

    /// Non-blocking housekeeping from `test` (reading or writing credits); throws the
    /// comm's error once it failed.
    func progress() throws(NCCLError) {
        try checkHealthy()
    }

    /// Whether the comm failed for a reason other than the peer's orderly close.
    var failedBadly: Bool { error != nil && !closedByPeer.load(ordering: .relaxed) }

    /// Throws the comm's error if it failed.
    func checkHealthy() throws(NCCLError) {
        if let e = error { throw e }
    }

    func register(_ region: NCCLMemoryRegion) {
        regions.withLockChecked { $0.append(region) }
        regionGeneration.add(1, ordering: .releasing)
    }

    func deregister(_ region: NCCLMemoryRegion) {
        regions.withLockChecked { $0.removeAll { $0 === region } }
        regionGeneration.add(1, ordering: .releasing)
    }
}
