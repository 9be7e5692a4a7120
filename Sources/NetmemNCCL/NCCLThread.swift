import Netmem
import SystemPackage

/// A named thread the plugin starts and joins (every thread a comm starts is joined when
/// the comm closes, so NCCL's process is left with the threads it had).
final class NCCLThread: @unchecked Sendable {
    private let thread: JoinableThread

    private final class Body: @unchecked Sendable {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes are kept); a thread
    /// the system refuses is an error for NCCL, not a trap in its process.
    init(name: String, _ body: @escaping () -> Void) throws(NCCLError) {
        let box = Body(body)
        do {
            thread = try JoinableThread(name: name) { box.run() }
        } catch {
            throw NCCLError(.system, "pthread_create for thread '\(name)' failed: \(error)")
        }
    }

    /// Waits for the thread to end (once).
    func join() {
        guard !thread.isJoined else { return }
        thread.join()
    }

    deinit {
        precondition(thread.isJoined, "an NCCLThread was dropped without join()")
    }
}
