import Glibc
import Logging
import NetmemSession
import Synchronization

/// Logging for the stream commands: swift-log to standard error, once per process.
enum CLILogging {
    private static let once = Mutex(false)

    static func bootstrap(verbose: Bool = false) -> Logger {
        once.withLockChecked { done in
            if !done {
                LoggingSystem.bootstrap { label in
                    var handler = StreamLogHandler.standardError(label: label)
                    handler.logLevel = verbose ? .debug : .info
                    return handler
                }
                done = true
            }
        }
        return Logger(label: "netmem")
    }
}

/// Runs a receive session's RX thread with a handler while the calling thread shows
/// progress and watches for Ctrl-C and the deadline; returns when the session ended.
enum CLIRunLoop {
    static func run(_ session: ReceiveSession, handler: @escaping @Sendable (ReceiveSession.Event) -> Void,
                    seconds: Double?, progress showProgress: Bool) throws {
        try session.start(handler: handler)
        let deadline = seconds.map { CLIClock.now + $0 }
        var progress = CLIProgress()
        var stopping = false
        while session.isRunning {
            usleep(50_000)
            if !stopping && (CLIStopSignal.isRequested || deadline.map { CLIClock.now >= $0 } == true) {
                stopping = true
                session.stop()
            }
            if showProgress {
                let s = session.statistics
                progress.update(bytes: s.payloadBytes, extra: "in flight \(s.receiver.buffersHeldByApplication) buffers "
                    + "(\(s.receiver.buffersInRing) in ring), \(s.connectionsOpen) open")
            }
        }
        progress.finish()
        do { try session.waitBlocking() } catch { throw CLIError("\(error)") }
    }
}

/// An error the CLI prints as is.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
