import CNetmemNCCL
import Glibc

/// A named thread the plugin starts and joins (every thread a comm starts is joined when
/// the comm closes, so NCCL's process is left with the threads it had).
final class NCCLThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var joined = false

    private final class Body: @unchecked Sendable {
        let name: String
        let run: () -> Void
        init(_ name: String, _ run: @escaping () -> Void) {
            self.name = name
            self.run = run
        }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes are kept).
    /// Mirrors `pthread_create(3)` + `pthread_setname_np(3)`.
    init(name: String, _ body: @escaping () -> Void) throws(NCCLError) {
        let box = Unmanaged.passRetained(Body(name, body)).toOpaque()
        let r = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            cnm_nccl_set_thread_name(body.name)
            body.run()
            return nil
        }, box)
        if r != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            throw NCCLError(.system, "pthread_create for thread '\(name)' failed: \(String(cString: strerror(r)))")
        }
    }

    /// Waits for the thread to end (once). Mirrors `pthread_join(3)`.
    func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    deinit {
        precondition(joined, "an NCCLThread was dropped without join()")
    }
}
