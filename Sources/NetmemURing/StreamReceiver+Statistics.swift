import Netmem
import Synchronization

extension StreamReceiver {
    /// Counters, readable from any thread while the receiver runs.
    public struct Statistics: Sendable, Equatable, CustomStringConvertible {
        /// Bytes the kernel's receives delivered, those of closing connections included.
        public var bytesReceived = 0
        /// Completions reaped, of every kind (receives, accepts, wake-ups, cancels).
        public var completions = 0
        /// `ReceivedSegment`s handed to the handler.
        public var segmentsDelivered = 0
        /// Multishot receives re-armed after the kernel ended them with data pending.
        public var rearms = 0
        /// Times a receive ran out of buffers (ENOBUFS) and its connection paused.
        public var backpressureEvents = 0
        /// Paused connections that resumed when buffers came back.
        public var resumes = 0
        /// Times the application held a connection (`hold`).
        public var holds = 0
        /// Accepts that failed with a transient error and were retried.
        public var acceptErrors = 0
        /// Buffers in the kernel's provided-buffer ring, as of the RX loop's last pass.
        public var buffersInRing = 0
        /// Chunks out of the ring with the application (segments not yet gone).
        public var buffersHeldByApplication = 0
        /// Connections the receiver began reading, accepted or adopted.
        public var connectionsAccepted = 0
        /// Connections that ended (`.closed` events).
        public var connectionsClosed = 0
        /// Connections being read, as of the RX loop's last pass.
        public var connectionsOpen = 0
        /// Whether the provided-buffer ring consumes buffers incrementally (known once `run` began).
        public var incremental = false
        /// Whether receives use bundles (known once `run` began).
        public var bundle = false

        /// Counters all at zero.
        public init() {}

        /// (name, value) pairs of the counters, in a stable order, for printing; `incremental` and
        /// `bundle` are left out.
        public var fields: [(String, Int)] {
            [("bytes", bytesReceived), ("completions", completions), ("segments", segmentsDelivered),
             ("rearms", rearms), ("enobufs", backpressureEvents), ("resumes", resumes), ("holds", holds),
             ("accept_errors", acceptErrors), ("buffers_in_ring", buffersInRing),
             ("buffers_held_by_app", buffersHeldByApplication), ("connections_accepted", connectionsAccepted),
             ("connections_closed", connectionsClosed), ("connections_open", connectionsOpen)]
        }

        public var description: String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
    }
}

/// The receiver's counters (atomics, written by the RX thread, read anywhere).
final class Counters: Sendable {
    let bytesReceived = Atomic<Int>(0)
    let completions = Atomic<Int>(0)
    let segmentsDelivered = Atomic<Int>(0)
    let rearms = Atomic<Int>(0)
    let backpressureEvents = Atomic<Int>(0)
    let resumes = Atomic<Int>(0)
    let holds = Atomic<Int>(0)
    let acceptErrors = Atomic<Int>(0)
    let buffersInRing = Atomic<Int>(0)
    let connectionsAccepted = Atomic<Int>(0)
    let connectionsClosed = Atomic<Int>(0)
    let connectionsOpen = Atomic<Int>(0)
    let incremental = Atomic<Int>(0)
    let bundle = Atomic<Int>(0)

    func snapshot(pool: PagePool) -> StreamReceiver.Statistics {
        var s = StreamReceiver.Statistics()
        s.bytesReceived = bytesReceived.load(ordering: .relaxed)
        s.completions = completions.load(ordering: .relaxed)
        s.segmentsDelivered = segmentsDelivered.load(ordering: .relaxed)
        s.rearms = rearms.load(ordering: .relaxed)
        s.backpressureEvents = backpressureEvents.load(ordering: .relaxed)
        s.resumes = resumes.load(ordering: .relaxed)
        s.holds = holds.load(ordering: .relaxed)
        s.acceptErrors = acceptErrors.load(ordering: .relaxed)
        s.buffersInRing = buffersInRing.load(ordering: .relaxed)
        s.buffersHeldByApplication = max(0, pool.inFlight - s.buffersInRing)
        s.connectionsAccepted = connectionsAccepted.load(ordering: .relaxed)
        s.connectionsClosed = connectionsClosed.load(ordering: .relaxed)
        s.connectionsOpen = connectionsOpen.load(ordering: .relaxed)
        s.incremental = incremental.load(ordering: .relaxed) != 0
        s.bundle = bundle.load(ordering: .relaxed) != 0
        return s
    }
}
