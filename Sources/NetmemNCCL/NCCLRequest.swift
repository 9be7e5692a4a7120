import Synchronization

/// One `isend` or `irecv` NCCL is waiting on. A comm owns a fixed set of them (NCCL keeps
/// at most `NCCL_NET_MAX_REQUESTS` outstanding per comm); the opaque pointer NCCL holds
/// is the object itself. The thread that posts it fills the fields, the data path
/// finishes it (`state` done or failed, with release ordering), and `test` hands it back.
final class NCCLRequest: @unchecked Sendable {
    enum Kind: Sendable { case send, receive }

    /// Values of `state`.
    enum State: UInt32 {
        case free = 0
        case posted = 1
        case done = 2
        /// Being failed: the error is being written; `test` treats it as still posted.
        case failing = 3
        case failed = 4
    }

    let kind: Kind
    /// The comm it belongs to. The comm owns its requests and outlives them, so no
    /// reference count is kept (`test` runs in NCCL's polling loop).
    unowned(unsafe) let comm: NCCLComm
    let state = Atomic<UInt32>(State.free.rawValue)

    // Written by the poster before the request is published.
    var data: UnsafeMutableRawPointer?
    /// Send: its size. Receive: the buffer's size.
    var capacity = 0
    var sequence: UInt64 = 0

    // Written by the data path before `done`.
    /// Bytes that arrived (receive) or were sent (send).
    var size = 0
    /// Written before `failed`.
    var error: NCCLError?

    // Receive progress: the pieces of one message may arrive on several sockets, each
    // read by its own receive thread.
    /// The message's size once a piece said it (-1 before).
    let total = Atomic<Int>(-1)
    /// Payload bytes placed in the buffer so far.
    let placed = Atomic<Int>(0)

    /// Pieces of a send still on their way (each lane decrements once per piece).
    let piecesLeft = Atomic<Int>(0)

    init(kind: Kind, comm: NCCLComm) {
        self.kind = kind
        self.comm = comm
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ p: UnsafeMutableRawPointer) -> NCCLRequest {
        Unmanaged<NCCLRequest>.fromOpaque(p).takeUnretainedValue()
    }

    /// Marks it done with `size` bytes (from the thread that finished the data).
    func complete(size: Int) {
        self.size = size
        let (ok, _) = state.compareExchange(expected: State.posted.rawValue, desired: State.done.rawValue,
                                            ordering: .acquiringAndReleasing)
        _ = ok  // already failed: the failure stands
    }

    /// Fails it with `error` unless it already finished. Returns whether it was failed.
    @discardableResult
    func fail(_ error: NCCLError) -> Bool {
        let (ok, _) = state.compareExchange(expected: State.posted.rawValue, desired: State.failing.rawValue,
                                            ordering: .acquiringAndReleasing)
        guard ok else { return false }
        self.error = error
        state.store(State.failed.rawValue, ordering: .releasing)
        return true
    }
}
