import Glibc
import Synchronization

/// A task executor that runs tasks on a receive session's RX thread, between batches of
/// completions, the way an event loop runs its tasks.
///
/// A consumer of the async API that runs here gets each frame without a thread switch:
/// the RX thread queues the consumer's continuation while it handles completions, runs it
/// right after, and the frame's chunk goes back to the pool on the thread that owns it,
/// before the ring is refilled. Use it for consumers that take a frame, look at it and let
/// it go:
///
/// ```swift
/// Task(executorPreference: session.executor) {
///     for try await connection in session.connections {
///         for try await frame in connection.frames { checksum.update(frame) }
///     }
/// }
/// ```
///
/// A task that blocks (a lock held for long, a blocking call, heavy computation) stalls
/// every connection of the session while it runs here: give such work to a task on the
/// default executor. Before the session starts and after it ended, the executor hands its
/// jobs to the global concurrent executor, so a task that prefers it never waits for a
/// thread that is gone.
public final class RXThreadExecutor: TaskExecutor {
    private struct State: ~Copyable {
        var jobs: [UnownedJob] = []
        /// The RX thread while it runs jobs here; nil before and after.
        var thread: pthread_t?
    }

    private enum Placement { case elsewhere, queued, queuedWake }

    private let state = Mutex(State())
    private let wake: @Sendable () -> Void
    private let jobsRunHere = Atomic<Int>(0)

    /// `wake` makes the RX loop return from its wait (from another thread).
    init(wake: @escaping @Sendable () -> Void) { self.wake = wake }

    /// Jobs that ran on the RX thread so far.
    public var jobsRun: Int { jobsRunHere.load(ordering: .relaxed) }

    /// `TaskExecutor` requirement: queues the job for the RX thread while it runs, and hands
    /// it to the global concurrent executor otherwise.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let placement: Placement = state.withLockChecked { s in
            guard let rx = s.thread else { return .elsewhere }
            s.jobs.append(unowned)
            return pthread_equal(rx, pthread_self()) != 0 ? .queued : .queuedWake
        }
        switch placement {
        case .elsewhere: globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        case .queuedWake: wake()
        case .queued: break
        }
    }

    // MARK: The RX thread

    /// The calling thread (the RX thread) runs the jobs from now on.
    func beginServing() {
        state.withLockChecked { s in
            precondition(s.thread == nil, "RXThreadExecutor served by two threads at once")
            s.thread = pthread_self()
        }
    }

    /// Runs the queued jobs, and those they queue, up to `limit` of them; wakes the loop
    /// for the next round when more are left.
    func runJobs(limit: Int = 1024) {
        var done = 0
        while done < limit {
            var taken: [UnownedJob] = []
            state.withLockChecked { s in swap(&taken, &s.jobs) }
            if taken.isEmpty { return }
            let me = asUnownedTaskExecutor()
            for job in taken { job.runSynchronously(on: me) }
            done += taken.count
            jobsRunHere.add(taken.count, ordering: .relaxed)
        }
        if state.withLockChecked({ !$0.jobs.isEmpty }) { wake() }
    }

    /// The RX thread stops running jobs: what is queued, and every later job, goes to the
    /// global concurrent executor.
    func endServing() {
        let left: [UnownedJob] = state.withLockChecked { s in
            s.thread = nil
            defer { s.jobs.removeAll() }
            return s.jobs
        }
        for job in left { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}
