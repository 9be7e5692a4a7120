import CNetmemLinux
import Logging
import Synchronization

extension PagePool {
    struct ShutdownState: ~Copyable {
        var destroyed = false
        var finished = false
        var startedNs: UInt64 = 0
        var lastWarningNs: UInt64 = 0
        var warnings = 0
    }

    /// What a pool's shutdown looks like now.
    public enum ShutdownStatus: Sendable, Equatable {
        case running
        /// Destroyed, waiting for buffers still handed out.
        case draining(inFlight: Int, seconds: Double)
        /// Destroyed and every buffer came back: the pool gave everything to its provider.
        case finished
    }

    /// Stops allocation at once without destroying the pool (a binding being unbound):
    /// allocations fail from now on and returned chunks go to the provider. Any thread.
    public func stopAllocating() {
        closed.store(true, ordering: .sequentiallyConsistent)
    }

    /// Destroys the pool: no new allocations; cached and ring chunks go back to the
    /// provider now, and every buffer still handed out goes back when it is returned.
    /// The pool is finished when the last one comes back. Owner thread only. Mirrors
    /// `page_pool_destroy`.
    public func destroy() {
        checkOwner("destroy")
        closed.store(true, ordering: .sequentiallyConsistent)
        finishFragmentChunk()
        flushCacheToProvider()
        shutdown.withLockChecked { state in
            if !state.destroyed {
                state.destroyed = true
                state.startedNs = cnm_now_ns()
            }
        }
        pollShutdown()
    }

    /// Gives the alloc cache to the provider (owner thread).
    @usableFromInline
    func flushCacheToProvider() {
        while cacheCount > 0 {
            cacheCount -= 1
            giveToProvider(cache[cacheCount])
            shared.recycleReleasedRefcnt.add(1)
        }
        mixedBelow = 0
    }

    /// A chunk returned after the pool closed goes to the provider directly.
    @usableFromInline
    func returnAfterClose(_ ref: NetmemRef) {
        giveToProvider(ref)
        shared.recycleReleasedRefcnt.add(1)
        shared.returnedAfterClose.add(1)
        pollShutdown()
    }

    /// Drains the recycle ring into the provider and finishes the pool when nothing is in
    /// flight; logs a stalled shutdown at most once per `stallWarningAfter`. Any thread;
    /// call it now and then while waiting for a destroyed pool (the kernel retries from a
    /// delayed work item the same way). Returns the status after the poll.
    @discardableResult
    public func pollShutdown() -> ShutdownStatus {
        shutdown.withLockChecked { state in
            guard closed.load(ordering: .sequentiallyConsistent) else { return .running }
            // Once closed, the owner takes nothing from the ring, so this lock makes the
            // drainer the ring's single consumer.
            var ref = NetmemRef(rawValue: 0)
            while ring.pop(into: &ref, max: 1) == 1 {
                giveToProvider(ref)
                shared.recycleReleasedRefcnt.add(1)
            }
            guard state.destroyed else { return .running }
            if state.finished { return .finished }
            let out = inFlight
            if out == 0 {
                // A return counted by the ring's tail may still be writing its slot.
                while ring.head != ring.produced {
                    if ring.pop(into: &ref, max: 1) == 1 {
                        giveToProvider(ref)
                        shared.recycleReleasedRefcnt.add(1)
                    } else {
                        cnm_cpu_relax()
                    }
                }
                state.finished = true
                provider.poolDidFinish(id: id)
                return .finished
            }
            let now = cnm_now_ns()
            let seconds = Double(now - state.startedNs) / 1e9
            let interval = configuration.stallWarningAfter
            let intervalNs = UInt64(interval.components.seconds) * 1_000_000_000
                + UInt64(interval.components.attoseconds / 1_000_000_000)
            if now - state.startedNs >= intervalNs && now - state.lastWarningNs >= intervalNs {
                state.lastWarningNs = now
                state.warnings += 1
                Self.logger.warning("\(Self.stalledMessage(inFlight: out, seconds: seconds)) (pool '\(configuration.name)')")
            }
            return .draining(inFlight: out, seconds: seconds)
        }
    }

    /// The shutdown status, after draining what came back through the ring.
    public var shutdownStatus: ShutdownStatus { pollShutdown() }

    /// "stalled pool shutdown: N in flight for S s" once a destroyed pool has waited
    /// longer than `stallWarningAfter`; nil otherwise.
    public var stalledShutdownWarning: String? {
        guard case let .draining(out, seconds) = pollShutdown() else { return nil }
        let after = configuration.stallWarningAfter
        guard Duration.seconds(seconds) >= after else { return nil }
        return Self.stalledMessage(inFlight: out, seconds: seconds)
    }

    /// How many stalled-shutdown warnings were logged.
    public var stalledWarningsLogged: Int { shutdown.withLockChecked { $0.warnings } }

    static func stalledMessage(inFlight: Int, seconds: Double) -> String {
        "stalled pool shutdown: \(inFlight) in flight for \(Int(seconds)) s"
    }
}
