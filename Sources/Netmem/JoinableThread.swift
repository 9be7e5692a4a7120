import CNetmemLinux
import Glibc
import SystemPackage

/// A POSIX thread running one closure, that can be joined: the RX threads of receive
/// sessions, senders, the NCCL plugin's lanes and the threads tests and benches start.
/// The one thread wrapper of Netmem's modules; not public API.
package final class JoinableThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let name: String?
    private let body: @Sendable () -> Void
    private var joined = false

    /// Starts a thread running `body`. Traps when the system cannot make one (out of
    /// threads is not something a caller can recover from here).
    package convenience init(_ body: @escaping @Sendable () -> Void) {
        do { try self.init(name: nil, body) } catch { preconditionFailure("pthread_create failed: \(error)") }
    }

    /// Starts a thread named `name` (at most 15 bytes are kept) running `body`, or throws
    /// the error `pthread_create(3)` gave, for callers that must not trap (a plugin
    /// inside another program). Mirrors `pthread_create(3)` + `pthread_setname_np(3)`.
    package init(name: String?, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        self.name = name
        self.body = body
        let box = Unmanaged.passRetained(self)
        let r = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<JoinableThread>.fromOpaque(raw!).takeRetainedValue()
            if let name = me.name { cnm_set_thread_name(name) }
            me.body()
            return nil
        }, box.toOpaque())
        if r != 0 {
            box.release()
            joined = true  // nothing to join
            throw Errno(rawValue: r)
        }
    }

    /// Waits for the thread to end. Once only, from one other thread.
    package func join() {
        precondition(!joined, "thread joined twice")
        joined = true
        pthread_join(thread, nil)
    }

    /// Whether `join()` ran (or the thread never started).
    package var isJoined: Bool { joined }
}

/// Starts a detached POSIX thread running `body` (nothing joins it; its resources go when
/// it ends). For threads whose end is signalled otherwise, such as a session's RX thread.
package func startDetachedThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body))
    let r = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box.toOpaque())
    precondition(r == 0, "pthread_create failed with error \(r)")
}
