import Netmem
import NetmemURing
import Synchronization

extension ReceiveSession {
    /// What a session has done, readable from any thread.
    public struct Statistics: Sendable, CustomStringConvertible {
        /// Frames delivered (raw mode: runs of bytes).
        public var frames = 0
        /// Payload bytes of the frames delivered.
        public var payloadBytes = 0
        /// Connections the session began reading, accepted or adopted.
        public var connectionsAccepted = 0
        /// Connections being read now.
        public var connectionsOpen = 0
        /// Connections that ended, with or without an error.
        public var connectionsEnded = 0
        /// Connections that ended with an error (bad input, reset, aborted mid-frame).
        public var connectionsFailed = 0
        /// Frames whose CRC-32C was checked and matched, counted when their connection ends.
        public var checksumsVerified = 0
        /// Frames whose sequence number did not follow the previous frame's.
        public var sequenceGaps = 0
        /// Times a connection's consumer fell behind and the session stopped reading it.
        public var holds = 0
        /// Frames that waited for their turn to hold receive memory.
        public var admissionWaits = 0
        /// Incomplete frames whose bytes were copied into staging memory, and the bytes.
        public var collapses = 0
        /// Bytes copied into staging memory by those collapses.
        public var bytesStaged = 0
        /// Connections ended because a frame stayed incomplete too long.
        public var frameTimeouts = 0
        /// Now: payload bytes reserved by frames in progress, frames waiting for their
        /// turn, and staging chunks in use.
        public var reservedBytes = 0
        /// Frames waiting now for their turn to hold receive memory.
        public var framesWaiting = 0
        /// Staging chunks (4 KiB) in use now.
        public var stagingInUse = 0
        /// Tokens out with frames the application holds.
        public var tokensOutstanding = 0
        /// Chunks handed out by the pool (in the ring or held by frames).
        public var poolInFlight = 0
        /// The io_uring receiver's counters.
        public var receiver = StreamReceiver.Statistics()
        /// The receive pool's counters.
        public var pool: PagePoolStats

        init(pool: PagePoolStats) { self.pool = pool }

        /// (name, value) pairs of the session's own counters, in a fixed order; `receiver` and
        /// `pool` have their own `fields`.
        public var fields: [(String, Int)] {
            [("frames", frames), ("payload_bytes", payloadBytes), ("connections_accepted", connectionsAccepted),
             ("connections_open", connectionsOpen), ("connections_ended", connectionsEnded),
             ("connections_failed", connectionsFailed), ("checksums_verified", checksumsVerified),
             ("sequence_gaps", sequenceGaps), ("holds", holds), ("admission_waits", admissionWaits),
             ("collapses", collapses), ("bytes_staged", bytesStaged), ("frame_timeouts", frameTimeouts),
             ("reserved_bytes", reservedBytes), ("frames_waiting", framesWaiting), ("staging_in_use", stagingInUse),
             ("tokens_outstanding", tokensOutstanding),
             ("pool_in_flight", poolInFlight)]
        }

        public var description: String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
    }

    /// The counters now.
    public var statistics: Statistics {
        var s = Statistics(pool: pool.stats)
        s.frames = counters.frames.load(ordering: .relaxed)
        s.payloadBytes = counters.payloadBytes.load(ordering: .relaxed)
        s.connectionsAccepted = counters.connectionsAccepted.load(ordering: .relaxed)
        s.connectionsOpen = counters.connectionsOpen.load(ordering: .relaxed)
        s.connectionsEnded = counters.connectionsEnded.load(ordering: .relaxed)
        s.connectionsFailed = counters.connectionsFailed.load(ordering: .relaxed)
        s.checksumsVerified = counters.checksumsVerified.load(ordering: .relaxed)
        s.sequenceGaps = counters.sequenceGaps.load(ordering: .relaxed)
        s.holds = counters.holds.load(ordering: .relaxed)
        s.admissionWaits = counters.admissionWaits.load(ordering: .relaxed)
        s.collapses = counters.collapses.load(ordering: .relaxed)
        s.bytesStaged = counters.bytesStaged.load(ordering: .relaxed)
        s.frameTimeouts = counters.frameTimeouts.load(ordering: .relaxed)
        s.reservedBytes = counters.reservedBytes.load(ordering: .relaxed)
        s.framesWaiting = counters.framesWaiting.load(ordering: .relaxed)
        s.stagingInUse = staging?.pool.inFlight ?? 0
        s.tokensOutstanding = tokens.heldCount
        s.poolInFlight = pool.inFlight
        s.receiver = receiver.statistics
        return s
    }

    /// The session's counters: written on the RX thread, read anywhere.
    final class Counters: Sendable {
        let frames = Atomic<Int>(0)
        let payloadBytes = Atomic<Int>(0)
        let connectionsAccepted = Atomic<Int>(0)
        let connectionsOpen = Atomic<Int>(0)
        let connectionsEnded = Atomic<Int>(0)
        let connectionsFailed = Atomic<Int>(0)
        let checksumsVerified = Atomic<Int>(0)
        let sequenceGaps = Atomic<Int>(0)
        let holds = Atomic<Int>(0)
        let admissionWaits = Atomic<Int>(0)
        let collapses = Atomic<Int>(0)
        let bytesStaged = Atomic<Int>(0)
        let frameTimeouts = Atomic<Int>(0)
        let reservedBytes = Atomic<Int>(0)
        let framesWaiting = Atomic<Int>(0)
    }
}
