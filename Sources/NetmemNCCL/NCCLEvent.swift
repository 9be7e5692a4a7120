import CNetmemNCCL

/// A wake-up a thread sleeps on until another thread signals it (a futex word).
final class NCCLEvent: @unchecked Sendable {
    private let word: UnsafeMutablePointer<cnm_nccl_event_t>

    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: cnm_nccl_event_t(sequence: 0))
    }

    deinit { word.deallocate() }

    /// The value to pass to `wait`, read before checking for work.
    var current: UInt32 { cnm_nccl_event_current(word) }

    /// Wakes every waiter.
    func signal() { cnm_nccl_event_signal(word) }

    /// Sleeps until a signal after `seen` was read, or `timeout` passes.
    func wait(seen: UInt32, timeout: Duration) {
        let (s, atto) = timeout.components
        cnm_nccl_event_wait(word, seen, s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
