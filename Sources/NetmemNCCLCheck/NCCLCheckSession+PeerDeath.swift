import CNetmemNCCL
import Glibc
import Netmem

/// The cases the peer process drives, and the case where the peer is SIGKILLed in the
/// middle of a transfer and `test` must report an error within seconds.
extension NCCLCheckSession {
    // MARK: The peer's cases, and the SIGKILL case

    func exchangeCases() throws(NCCLCheckError) {
        if driver {
            let n = Int(try channel.expect("CASES", seconds: Self.channelWait)) ?? 0
            for _ in 0..<n {
                let f = try channel.expect("CASE", seconds: Self.channelWait).split(separator: "\t", maxSplits: 3,
                                                                                     omittingEmptySubsequences: false)
                guard f.count == 4 else { throw .peer("bad case line from the peer") }
                cases.append(.init(name: String(f[2]), passed: f[0] == "1", seconds: Double(f[1]) ?? 0,
                                   detail: String(f[3]), side: "peer"))
            }
            let counts = try channel.expect("COUNTS", seconds: Self.channelWait).split(separator: " ")
            if counts.count == 2 { messages += Int(counts[0]) ?? 0; bytes += Int(counts[1]) ?? 0 }
        } else {
            try channel.send("CASES \(cases.count)")
            for c in cases {
                func clean(_ s: String) -> String { String(s.map { $0 == "\t" || $0 == "\n" ? " " : $0 }) }
                try channel.send("CASE \(c.passed ? 1 : 0)\t\(c.seconds)\t\(clean(c.name))\t\(clean(c.detail))")
            }
            try channel.send("COUNTS \(messages) \(bytes)")
        }
    }

    /// Both sides set up one comm each way and stream; the driver kills the peer with
    /// SIGKILL mid-transfer and checks that every outstanding request fails (or finishes)
    /// within 10 s, that closing still succeeds, and that fds and threads come back.
    func killCase() throws(NCCLCheckError) {
        try sync("kill-setup")
        let name = "SIGKILL of the peer mid-transfer: outstanding requests fail within 10 s, close succeeds, fds and threads back"
        var failure: CaseFailure?
        var detail = ""
        let t0 = monotonicSeconds()
        onOtherThread { [self] in
            do { detail = try killTransfer() } catch { failure = (error as? CaseFailure) ?? CaseFailure("\(error)") }
        }
        if !driver { return }  // the peer is killed inside killTransfer; it never gets here
        if failure == nil {
            do throws(NCCLCallError) { try plugin.finalize(ctx) } catch { failure = CaseFailure("\(error)") }
            ctx = nil
            let after = NCCLProcessProbe.settle(to: baseline)
            if failure == nil && !after.isWithin(baseline) {
                failure = CaseFailure("before init: \(baseline); after close and finalize: \(after): \(after.extra(over: baseline))")
            }
            detail += "; after finalize \(after), none new"
        }
        cases.append(.init(name: name, passed: failure == nil, seconds: monotonicSeconds() - t0,
                           detail: failure?.message ?? detail, side: side))
        if let status = peer?.wait(seconds: 5), status & 0x7F != SIGKILL {
            cases.append(.init(name: "peer ended by SIGKILL", passed: false, seconds: 0,
                               detail: "wait status \(status)", side: side))
        }
    }

    func killTransfer() throws -> String {
        let sizes = [1 << 20, 65536, (1 << 20) + 7, 4096]
        do {
            ctx = try plugin.initialize(commID: driver ? 0xD2 : 0x9F)
            let (l, h) = try plugin.listen(ctx)
            listeners = [l]
            try channel.send("HANDLES " + Hex.encode(h))
            guard var theirs = Hex.decode(Substring(try channel.expect("HANDLES", seconds: Self.channelWait))), theirs.count == 128 else {
                throw CaseFailure("no handle from the other process")
            }
            var s: UnsafeMutableRawPointer?
            var r: UnsafeMutableRawPointer?
            let deadline = monotonicSeconds() + 20
            while s == nil || r == nil {
                if s == nil {
                    s = try theirs.withUnsafeMutableBytes { raw in
                        Result { () throws(NCCLCallError) in try plugin.connect(ctx, handle: raw.baseAddress!) }
                    }.get()
                }
                if r == nil { r = try plugin.accept(l) }
                if monotonicSeconds() > deadline { throw CaseFailure("connect/accept not done in 20 s") }
            }
            let out = try NCCLTrafficStream(name: "send stream", plugin: plugin, comm: s, direction: .send, sizes: sizes,
                                            seed: streamSeed(fromDriver: driver, comm: 9, tag: 3), limit: .max)
            let inn = try NCCLTrafficStream(name: "receive stream", plugin: plugin, comm: r, direction: .receive, sizes: sizes,
                                            seed: streamSeed(fromDriver: !driver, comm: 9, tag: 3), limit: .max)
            var released = false
            defer {
                if !released {
                    out.release(deregister: false)
                    inn.release(deregister: false)
                }
            }
            guard driver else {
                // Stream until killed (bounded, in case the driver never does).
                _ = NCCLTrafficStream.run([out, inn], seconds: 120)
                exit(3)
            }
            let warm = monotonicSeconds() + 30
            while inn.completed < 16 || out.completed < 16 {
                _ = out.step()
                _ = inn.step()
                if let f = out.failure ?? inn.failure { throw CaseFailure("before the kill: \(f)") }
                if monotonicSeconds() > warm { throw CaseFailure("the transfer did not get going in 30 s") }
            }
            peer?.kill()
            let killed = monotonicSeconds()
            let (sentAtKill, receivedAtKill) = (out.completed, inn.completed)
            out.limit = out.posted
            inn.limit = inn.posted
            let settled = NCCLTrafficStream.settleAfterPeerDeath([out, inn], seconds: 10)
            guard settled.unresolved == 0 else {
                throw CaseFailure("\(settled.unresolved) requests neither failed nor finished 10 s after the peer was killed")
            }
            // Requests whose data was already on its way may finish, and TCP may still
            // take a send or two before the peer's reset arrives; but sends and receives
            // posted now must fail soon.
            var errors = settled.errors
            for stream in [out, inn] {
                let deadline = killed + 10
                while stream.callError == nil && monotonicSeconds() < deadline {
                    if stream.posted >= stream.limit && stream.outstandingRequests == 0 { stream.limit = stream.posted + 1 }
                    _ = stream.step()
                    usleep(200)
                }
                let what = stream.direction == .send ? "an isend" : "an irecv"
                guard let e = stream.callError else {
                    throw CaseFailure("\(what) posted after the peer was killed did not fail within 10 s (\(stream.completed - (stream.direction == .send ? sentAtKill : receivedAtKill)) completed after the kill)")
                }
                errors.append(e)
            }
            let took = monotonicSeconds() - killed
            let allowed = [Int32(CNM_NCCL_REMOTE_ERROR.rawValue), Int32(CNM_NCCL_SYSTEM_ERROR.rawValue)]
            guard errors.allSatisfy({ allowed.contains($0.code) }) else {
                throw CaseFailure("after the peer died: \(errors.map(\.description).joined(separator: ", ")); ncclRemoteError or ncclSystemError expected")
            }
            let first = errors[0]
            released = true
            out.release()
            inn.release()
            try plugin.closeSend(s)
            try plugin.closeRecv(r)
            try plugin.closeListen(l)
            listeners = []
            _ = CapturedLog.take()
            return "\(receivedAtKill) received; after the kill \(settled.finished) in-flight requests finished, \(settled.errors.count) failed, and a new isend and irecv failed (\(first.description)), all within \((took * 1000).rounded()) ms; closes succeeded"
        }
    }
}
