import Glibc

extension NCCLTrafficStream {
    /// After the peer died: tests every outstanding request of `streams` until each has
    /// finished or failed (at most `seconds`); returns the errors and how many are left.
    static func settleAfterPeerDeath(_ streams: [NCCLTrafficStream], seconds: Double) -> (errors: [NCCLCallError], unresolved: Int, finished: Int) {
        let deadline = monotonicSeconds() + seconds
        var errors: [NCCLCallError] = []
        let before = streams.reduce(0) { $0 + $1.outstandingRequests }
        while monotonicSeconds() < deadline {
            var left = 0
            for s in streams { left += s.testOutstanding(into: &errors) }
            if left == 0 { return (errors, 0, before - errors.count) }
            usleep(1000)
        }
        let left = streams.reduce(0) { $0 + $1.outstandingRequests }
        return (errors, left, before - left - errors.count)
    }
}
