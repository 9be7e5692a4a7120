import Glibc
import Synchronization

/// Ctrl-C (SIGINT) and SIGTERM: the first sets a flag that loops look at; the second
/// exits at once.
enum CLIStopSignal {
    static let requested = Atomic<Int>(0)

    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            if CLIStopSignal.requested.add(1, ordering: .relaxed).newValue > 1 { _exit(130) }
        }
        sigemptyset(&action.sa_mask)
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    static var isRequested: Bool { requested.load(ordering: .relaxed) > 0 }
}
