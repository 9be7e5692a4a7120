import Netmem
import Glibc
import Logging
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

/// Runs a receive session on its own thread while the calling thread shows progress and
/// watches for Ctrl-C; returns when the session's loop ended.
enum CLIRunLoop {
    static func run(_ session: CLIReceiveSession, deadline: ContinuousClock.Instant?, progress showProgress: Bool,
                    while extraWork: (() -> Void)? = nil) throws {
        let failure = Mutex<String?>(nil)
        let done = Atomic<Bool>(false)
        let rx = CLIThread(name: "netmem-rx") {
            do {
                try session.run(deadline: deadline)
            } catch {
                failure.withLockChecked { $0 = "\(error)" }
            }
            done.store(true, ordering: .releasing)
        }
        var progress = CLIProgress()
        var stopping = false
        while !done.load(ordering: .acquiring) {
            usleep(50_000)
            if CLIStopSignal.isRequested && !stopping {
                stopping = true
                session.stop()
            }
            extraWork?()
            if showProgress {
                progress.update(bytes: session.payloadBytes.load(ordering: .relaxed), extra: session.progressExtra)
            }
        }
        rx.join()
        progress.finish()
        if let message = failure.withLockChecked({ $0 }) { throw CLIError(message) }
    }
}

/// An error the CLI prints as is.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
