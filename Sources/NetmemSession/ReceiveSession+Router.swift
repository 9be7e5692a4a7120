import Netmem
import NetmemDevice
import NetmemFraming
import NetmemURing
import SystemPackage

extension ReceiveSession {
    /// One connection's parser and how it stands (RX thread only).
    final class ConnectionState {
        let id: ConnectionID
        var parser: FrameParser
        var error: FrameError?
        /// Payload bytes of the frame in progress counted against the pending budget.
        var reserved = 0
        /// Waiting for its turn (held with `.admission`).
        var waiting = false
        /// When the frame in progress must be complete.
        var deadline: ContinuousClock.Instant?
        var admittedAt: ContinuousClock.Instant?

        init(id: ConnectionID, parser: consuming FrameParser) {
            self.id = id
            self.parser = parser
        }
    }

    /// Turns receiver events into session events on the RX thread: a parser per
    /// connection splits frames (raw mode: passes runs of bytes on); a connection with bad
    /// input is closed at once, with an error naming what was wrong; other connections go
    /// on.
    ///
    /// In framed mode it also keeps the connections from stalling each other, as a kernel
    /// keeps sockets within their memory (`tcp_collapse`, pruning, timeouts):
    /// - admission: incomplete frames hold at most `pendingBudget` payload bytes in all;
    ///   a frame that does not fit waits its turn (its connection is not read), first
    ///   come first served, so a completing frame always gets memory; a smaller frame
    ///   that fits beside the next in line starts at once;
    /// - staging: a frame waiting for its turn, and under memory pressure an incomplete
    ///   frame that pins receive chunks for little data, has its bytes copied into
    ///   staging memory, and the chunks recycle;
    /// - header first: a connection's first read, and while frames wait every read,
    ///   stops at the next frame boundary, so no payload lands before its frame's turn
    ///   and what waits is a header;
    /// - timeout: a frame that stays incomplete past `partialFrameTimeout` ends its
    ///   connection alone.
    struct Router: ~Copyable {
        let session: ReceiveSession
        let framed: Bool
        let budget: Int
        let timeout: Duration
        var connections: [ConnectionID: ConnectionState] = [:]
        var listenerFailure: ReceiveSessionError?
        var reserved = 0
        var waiting: [ConnectionID] = []
        var lastPressureCheck = ContinuousClock.now

        init(session: ReceiveSession) {
            self.session = session
            if case .framed = session.configuration.mode { framed = true } else { framed = false }
            budget = session.configuration.effectivePendingBudget
            timeout = session.configuration.partialFrameTimeout
            if framed { session.receiver.limitFirstReads(to: FrameHeader.size) }
        }

        /// `consumerBehind` says whether a connection's consumer fell behind (async API):
        /// its frame clock stops while the application, not the peer, is the delay.
        mutating func handle(_ event: consuming ReceiveEvent, _ deliver: (Event) -> Void,
                             consumerBehind: (ConnectionID) -> Bool) {
            let counters = session.counters
            defer {
                counters.reservedBytes.store(reserved, ordering: .relaxed)
                counters.framesWaiting.store(waiting.count, ordering: .relaxed)
            }
            switch consume event {
            case let .connected(id):
                // The configuration was validated against the region at init.
                let parser = try! FrameParser(mode: session.configuration.mode, tokens: session.tokens,
                                              regions: session.regions)
                connections[id] = ConnectionState(id: id, parser: parser)
                counters.connectionsAccepted.add(1, ordering: .relaxed)
                counters.connectionsOpen.add(1, ordering: .relaxed)
                deliver(.connected(id))
            case let .data(segment):
                let id = segment.connection
                guard let c = connections[id], c.error == nil else { return }  // closing: dropped
                var completed = 0
                do throws(FrameError) {
                    try c.parser.consume(segment.takePiece()) { frame in
                        completed += 1
                        counters.frames.add(1, ordering: .relaxed)
                        counters.payloadBytes.add(frame.payloadLength, ordering: .relaxed)
                        deliver(.frame(id, frame))
                    }
                } catch {
                    fail(c, error)
                }
                if framed && c.error == nil {
                    account(c, completed: completed)
                    if !waiting.isEmpty && !c.waiting { readToBoundary(c) }
                }
                if framed { relievePressure(force: false) }
            case let .closed(id, end):
                guard let c = connections.removeValue(forKey: id) else { return }
                if c.error == nil {
                    switch end {
                    case .endOfStream:
                        do throws(FrameError) { try c.parser.finish() } catch { c.error = error }
                    case .reset:
                        c.error = .connectionFailed(.connectionReset)
                    case let .failed(e):
                        c.error = .connectionFailed(e)
                    case .closedLocally:
                        if !c.parser.isAtFrameBoundary { c.error = .aborted }
                    }
                }
                c.parser.abort()
                release(c)
                if c.waiting { waiting.removeAll { $0 == id } }
                let summary = ConnectionSummary(statistics: c.parser.statistics, error: c.error, end: end)
                counters.connectionsOpen.add(-1, ordering: .relaxed)
                counters.connectionsEnded.add(1, ordering: .relaxed)
                if c.error != nil { counters.connectionsFailed.add(1, ordering: .relaxed) }
                counters.checksumsVerified.add(summary.statistics.checksumsVerified, ordering: .relaxed)
                counters.sequenceGaps.add(summary.statistics.sequenceGaps, ordering: .relaxed)
                deliver(.ended(id, summary))
                admitWaiting()
            case let .listenerFailed(_, e):
                listenerFailure = .listenerFailed(session.localAddress, e)
                session.receiver.stop()
            case .placed:
                break  // the session never asks for placements
            case .tick:
                if framed {
                    expireFrames(consumerBehind)
                    relievePressure(force: true)
                }
            }
        }

        private mutating func fail(_ c: ConnectionState, _ error: FrameError) {
            guard c.error == nil else { return }
            c.error = error
            c.parser.abort()
            release(c)
            session.receiver.close(c.id)
        }

        // MARK: Admission

        /// After a piece: frames that completed gave their budget back; a frame that just
        /// started gets its turn or waits for it.
        private mutating func account(_ c: ConnectionState, completed: Int) {
            if completed > 0 && c.reserved > 0 {
                // The frame it was admitted for completed (a new one may have begun).
                release(c)
                admitWaiting()
            }
            guard c.reserved == 0, !c.waiting, let length = c.parser.payloadLengthInProgress, length > 0 else { return }
            if fitsNow(length) {
                admit(c, length)
            } else {
                c.waiting = true
                waiting.append(c.id)
                session.counters.admissionWaits.add(1, ordering: .relaxed)
                session.receiver.hold(c.id, reason: .admission)
                // While it waits, what it already received must not pin receive chunks
                // the frames being received need.
                stage(c)
            }
        }

        private mutating func admit(_ c: ConnectionState, _ length: Int) {
            c.reserved = length
            reserved += length
            c.admittedAt = .now
            c.deadline = .now + timeout
        }

        private mutating func release(_ c: ConnectionState) {
            reserved -= c.reserved
            c.reserved = 0
            c.deadline = nil
            c.admittedAt = nil
        }

        /// Whether a frame of `length` may start now: it fits the budget and, when frames
        /// wait, it fits beside the first of them too (so small frames fill gaps without
        /// ever delaying the frame whose turn is next).
        private func fitsNow(_ length: Int) -> Bool {
            if reserved == 0 { return true }
            guard reserved + length <= budget else { return false }
            guard let head = waiting.first, let h = connections[head] else { return true }
            let headLength = h.parser.payloadLengthInProgress ?? 0
            return reserved + headLength + length <= budget
        }

        /// Gives waiting frames their turn, first come first served, while they fit.
        private mutating func admitWaiting() {
            while let first = waiting.first {
                guard let c = connections[first], c.error == nil else {
                    waiting.removeFirst()
                    continue
                }
                let length = c.parser.payloadLengthInProgress ?? 0
                guard reserved == 0 || reserved + length <= budget else { return }
                waiting.removeFirst()
                c.waiting = false
                if length > 0 { admit(c, length) }
                readToBoundary(c)
                session.receiver.resume(c.id, reason: .admission)
            }
        }

        // MARK: Timeouts

        private mutating func expireFrames(_ consumerBehind: (ConnectionID) -> Bool) {
            let now = ContinuousClock.now
            let tick = session.receiver.configuration.tickInterval ?? .milliseconds(100)
            for c in connections.values where c.error == nil {
                guard let deadline = c.deadline else { continue }
                if consumerBehind(c.id) {
                    c.deadline = deadline + tick  // the application's delay, not the peer's
                    continue
                }
                guard now >= deadline, let expected = c.parser.payloadLengthInProgress else { continue }
                let seconds = Int(((now - (c.admittedAt ?? now)).components.seconds))
                session.counters.frameTimeouts.add(1, ordering: .relaxed)
                fail(c, .partialFrameTimedOut(received: c.parser.bytesHeld, expected: expected, seconds: seconds))
            }
            admitWaiting()
        }

        // MARK: Memory pressure

        /// When the ring is short of memory, copies the bytes of incomplete frames that pin
        /// receive chunks for little data into staging memory, so the chunks recycle.
        /// Looked at most once per millisecond from the data path (`force` from ticks).
        private mutating func relievePressure(force: Bool) {
            guard session.staging != nil else { return }
            let now = ContinuousClock.now
            if !force && now - lastPressureCheck < .milliseconds(1) { return }
            lastPressureCheck = now
            let pool = session.pool
            let ring = session.receiver.statistics.buffersInRing
            let free = pool.configuration.poolSize - pool.inFlight
            let wanted = max(1, session.configuration.bufferCount / 2)
            guard free + ring < wanted else { return }
            let chunkSize = pool.configuration.chunkSize
            for c in connections.values where c.error == nil {
                let pinned = c.parser.receiveChunksPinned
                guard pinned > 0, c.waiting || c.parser.bytesHeld * 2 < pinned * chunkSize else { continue }
                stage(c)
            }
        }

        /// Makes a connection's next read stop at its frame's end (or its header's), so
        /// the bytes of a frame that has no turn yet do not land in receive memory.
        private func readToBoundary(_ c: ConnectionState) {
            guard let bytes = c.parser.bytesToNextBoundary, bytes > 0 else { return }
            session.receiver.limitNextRead(c.id, to: bytes)
        }

        /// Copies what a connection's incomplete frame holds in receive chunks into
        /// staging memory (as much as staging has room for).
        private mutating func stage(_ c: ConnectionState) {
            guard let staging = session.staging, c.parser.receiveChunksPinned > 0 else { return }
            let copied = c.parser.collapse(into: staging.pool, regions: staging.regions)
            if copied > 0 {
                session.counters.collapses.add(1, ordering: .relaxed)
                session.counters.bytesStaged.add(copied, ordering: .relaxed)
            }
        }

        /// Ends connections the receiver did not report closed (none, normally: its run
        /// closes every connection before it returns).
        mutating func abortAll(_ deliver: (Event) -> Void) {
            for (id, c) in connections {
                c.parser.abort()
                session.counters.connectionsOpen.add(-1, ordering: .relaxed)
                session.counters.connectionsEnded.add(1, ordering: .relaxed)
                deliver(.ended(id, ConnectionSummary(statistics: c.parser.statistics, error: .aborted, end: .closedLocally)))
            }
            connections.removeAll()
        }
    }
}
