import NetmemDevice
import NetmemFraming
import NetmemURing
import SystemPackage

extension ReceiveSession {
    /// One connection's parser and how it stands (RX thread only).
    final class ConnectionState {
        var parser: FrameParser
        var error: FrameError?
        init(parser: consuming FrameParser) { self.parser = parser }
    }

    /// Turns receiver events into session events on the RX thread: a parser per
    /// connection splits frames (raw mode: passes runs of bytes on); a connection with bad
    /// input is closed at once, with an error naming what was wrong; other connections go
    /// on.
    struct Router: ~Copyable {
        let session: ReceiveSession
        var connections: [ConnectionID: ConnectionState] = [:]
        var listenerFailure: ReceiveSessionError?

        init(session: ReceiveSession) { self.session = session }

        mutating func handle(_ event: consuming ReceiveEvent, _ deliver: (Event) -> Void) {
            let counters = session.counters
            switch consume event {
            case let .connected(id):
                // The configuration was validated against the region at init.
                let parser = try! FrameParser(mode: session.configuration.mode, tokens: session.tokens,
                                              regions: session.regions)
                connections[id] = ConnectionState(parser: parser)
                counters.connectionsAccepted.add(1, ordering: .relaxed)
                counters.connectionsOpen.add(1, ordering: .relaxed)
                deliver(.connected(id))
            case let .data(segment):
                let id = segment.connection
                guard let c = connections[id], c.error == nil else { return }  // closing: dropped
                do throws(FrameError) {
                    try c.parser.consume(segment.takePiece()) { frame in
                        counters.frames.add(1, ordering: .relaxed)
                        counters.payloadBytes.add(frame.payloadLength, ordering: .relaxed)
                        deliver(.frame(id, frame))
                    }
                } catch {
                    c.error = error
                    session.receiver.close(id)
                }
            case let .closed(id, end):
                guard let c = connections.removeValue(forKey: id) else { return }
                if c.error == nil {
                    switch end {
                    case .endOfStream:
                        do throws(FrameError) { try c.parser.finish() } catch { c.error = error }
                    case .reset:
                        c.error = .connectionFailed(errno: Errno.connectionReset.rawValue, "connection reset by peer")
                    case let .failed(e):
                        c.error = .connectionFailed(errno: e.rawValue, e.description)
                    case .closedLocally:
                        if !c.parser.isAtFrameBoundary { c.error = .aborted }
                    }
                }
                c.parser.abort()
                let summary = ConnectionSummary(statistics: c.parser.statistics, error: c.error, end: end)
                counters.connectionsOpen.add(-1, ordering: .relaxed)
                counters.connectionsEnded.add(1, ordering: .relaxed)
                if c.error != nil { counters.connectionsFailed.add(1, ordering: .relaxed) }
                counters.checksumsVerified.add(summary.statistics.checksumsVerified, ordering: .relaxed)
                counters.sequenceGaps.add(summary.statistics.sequenceGaps, ordering: .relaxed)
                deliver(.ended(id, summary))
            case let .listenerFailed(_, e):
                listenerFailure = .listenerFailed(session.localAddress, e)
                session.receiver.stop()
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
