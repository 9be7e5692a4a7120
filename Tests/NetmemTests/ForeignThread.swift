import Netmem
import Glibc
import Synchronization

/// A thread of its own that runs closures handed to it, one at a time, so a test can
/// return buffers "from another thread" deterministically. Bounded waits only.
final class ForeignThread: @unchecked Sendable {
    private let work = Mutex<[@Sendable () -> Void]>([])
    private let done = Atomic<Int>(0)
    private let stop = Atomic<Bool>(false)
    private var thread = pthread_t()
    private var submitted = 0

    init() {
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let me = Unmanaged<ForeignThread>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
            return nil
        }, box.toOpaque())
    }

    private func loop() {
        while !stop.load(ordering: .acquiring) {
            let next = work.withLockChecked { $0.isEmpty ? nil : $0.removeFirst() }
            if let next {
                next()
                done.wrappingAdd(1, ordering: .releasing)
            } else {
                sched_yield()
            }
        }
    }

    /// Runs `body` on the foreign thread and waits (at most 10 s) for it to finish.
    func run(_ body: @escaping @Sendable () -> Void) {
        submitted += 1
        work.withLockChecked { $0.append(body) }
        var spins = 0
        while done.load(ordering: .acquiring) < submitted {
            sched_yield()
            spins += 1
            precondition(spins < 50_000_000, "foreign thread did not finish its work")
        }
    }

    func join() {
        stop.store(true, ordering: .releasing)
        pthread_join(thread, nil)
    }
}
