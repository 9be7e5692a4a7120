import Glibc

/// A POSIX thread running one closure, that can be joined: the RX threads of receive
/// sessions, senders and the threads tests and benches start. Shared by Netmem's modules;
/// not public API.
package final class JoinableThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: @Sendable () -> Void
    private var joined = false

    /// Starts a thread running `body`. Traps when the system cannot make one (out of
    /// threads is not something a caller can recover from here).
    package init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self)
        let r = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<JoinableThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
        precondition(r == 0, "pthread_create failed with error \(r)")
    }

    /// Waits for the thread to end. Once only, from one other thread.
    package func join() {
        precondition(!joined, "thread joined twice")
        joined = true
        pthread_join(thread, nil)
    }
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

