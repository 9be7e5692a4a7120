import Synchronization

/// A comm's fixed set of requests. Taking one and giving it back happen on the thread that
/// calls `isend`/`irecv`/`test` (NCCL's proxy thread); the state word makes it safe anyway.
final class NCCLRequestPool: @unchecked Sendable {
    let requests: [NCCLRequest]

    init(kind: NCCLRequest.Kind, comm: NCCLComm, count: Int) {
        requests = (0..<count).map { _ in NCCLRequest(kind: kind, comm: comm) }
    }

    /// A free request, reset, not yet posted; nil when all are in use.
    func take() -> NCCLRequest? {
        for r in requests where r.state.load(ordering: .relaxed) == NCCLRequest.State.free.rawValue {
            r.data = nil
            r.capacity = 0
            r.size = 0
            r.error = nil
            r.total.store(-1, ordering: .relaxed)
            r.placed.store(0, ordering: .relaxed)
            r.piecesLeft.store(0, ordering: .relaxed)
            return r
        }
        return nil
    }

    /// Publishes a request taken with `take` (its fields are set).
    func post(_ r: NCCLRequest) {
        r.state.store(NCCLRequest.State.posted.rawValue, ordering: .releasing)
    }

    /// Fails every posted request with `error`.
    func failAll(_ error: NCCLError) {
        for r in requests { r.fail(error) }
    }

    var outstanding: Int {
        requests.count { $0.state.load(ordering: .relaxed) != NCCLRequest.State.free.rawValue }
    }
}
