import Synchronization

/// Process-wide counters of the plugin (all comms), readable at any time; exported as one
/// JSON object by `netmem_nccl_plugin_statistics`.
final class NCCLStatistics: Sendable {
    static let shared = NCCLStatistics()

    let sendsPosted = Atomic<Int>(0)
    let sendsDeferred = Atomic<Int>(0)
    let receivesPosted = Atomic<Int>(0)
    let bytesSent = Atomic<Int>(0)
    let bytesReceived = Atomic<Int>(0)
    /// Pieces sent with SEND_ZC and pieces whose SEND_ZC notification said the kernel copied.
    let zeroCopySends = Atomic<Int>(0)
    let copiedByKernel = Atomic<Int>(0)
    let fixedBufferSends = Atomic<Int>(0)
    let plainSends = Atomic<Int>(0)
    let registrationFailures = Atomic<Int>(0)
    /// Sockets that stopped SEND_ZC because the kernel copied every send (`auto`).
    let zeroCopyFallbacks = Atomic<Int>(0)
    /// Receive completions and ENOBUFS pauses of closed comms' receive engines.
    let receiveCompletions = Atomic<Int>(0)
    let receiveSegments = Atomic<Int>(0)
    let receiveBackpressure = Atomic<Int>(0)
    /// Payload bytes received straight into NCCL's buffers (no copy through the pool).
    let bytesPlaced = Atomic<Int>(0)
    let commsOpened = Atomic<Int>(0)
    let commsClosed = Atomic<Int>(0)
    let commsFailed = Atomic<Int>(0)
    let threadsStarted = Atomic<Int>(0)
    let threadsJoined = Atomic<Int>(0)

    var fields: [(String, Int)] {
        func v(_ a: borrowing Atomic<Int>) -> Int { a.load(ordering: .relaxed) }
        return [("sends_posted", v(sendsPosted)), ("sends_deferred", v(sendsDeferred)),
                ("receives_posted", v(receivesPosted)), ("bytes_sent", v(bytesSent)), ("bytes_received", v(bytesReceived)),
                ("zero_copy_sends", v(zeroCopySends)), ("copied_by_kernel", v(copiedByKernel)),
                ("fixed_buffer_sends", v(fixedBufferSends)), ("plain_sends", v(plainSends)),
                ("registration_failures", v(registrationFailures)), ("zero_copy_fallbacks", v(zeroCopyFallbacks)), ("rx_completions", v(receiveCompletions)),
                ("rx_segments", v(receiveSegments)), ("rx_enobufs", v(receiveBackpressure)),
                ("rx_bytes_placed", v(bytesPlaced)),
                ("comms_opened", v(commsOpened)), ("comms_closed", v(commsClosed)), ("comms_failed", v(commsFailed)),
                ("threads_started", v(threadsStarted)), ("threads_joined", v(threadsJoined))]
    }

    var json: String {
        "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
