import Glibc
import Netmem
import Synchronization

/// A thread of its own that runs closures handed to it, one at a time, and waits for each:
/// a test returns buffers or tokens "from another thread" in a deterministic order.
/// Bounded waits only; `join()` ends it.
public final class WorkerThread: Sendable {
    private let work = Mutex<[@Sendable () -> Void]>([])
    private let finished = Atomic<Int>(0)
    private let submitted = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<JoinableThread?>(nil)

    public init() {
        let t = JoinableThread { [self] in loop() }
        thread.withLockChecked { $0 = t }
    }

    private func loop() {
        while !stopping.load(ordering: .acquiring) {
            if let next = work.withLockChecked({ $0.isEmpty ? nil : $0.removeFirst() }) {
                next()
                finished.wrappingAdd(1, ordering: .releasing)
            } else {
                sched_yield()
            }
        }
    }

    /// Runs `body` on the worker and returns its result (traps if the worker does not
    /// answer within about 50 million yields: a test bug, not a slow machine).
    @discardableResult
    public func run<R: Sendable>(_ body: @escaping @Sendable () -> R) -> R {
        let result = Mutex<R?>(nil)
        let ticket = submitted.wrappingAdd(1, ordering: .relaxed).newValue
        work.withLockChecked { $0.append { let r = body(); result.withLockChecked { $0 = r } } }
        var spins = 0
        while finished.load(ordering: .acquiring) < ticket {
            sched_yield()
            spins += 1
            precondition(spins < 50_000_000, "worker thread did not finish its work")
        }
        return result.withLockChecked { $0! }
    }

    /// Ends the worker once what was handed to it ran.
    public func join() {
        stopping.store(true, ordering: .releasing)
        thread.withLockChecked { t in
            t?.join()
            t = nil
        }
    }
}
