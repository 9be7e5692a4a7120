import Netmem
import NetmemURing
import NetmemTestSupport
import Testing

@Suite("io_uring ring")
struct IOURingTests {
    @Test("nop round trip: every submission comes back with its user data")
    func nopRoundTrip() throws {
        var ring = try IOURing(IOURing.Options(entries: 8))
        let entries = ring.submissionEntries
        #expect(entries == 8)
        for i in 0..<20 {
            // More than the queue holds: nextSQE submits when full.
            try ring.prepareNop(userData: UInt64(100 + i))
        }
        var seen = Set<UInt64>()
        let deadline = ContinuousClock.now + .seconds(5)
        while seen.count < 20 && ContinuousClock.now < deadline {
            try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(100))
            ring.reap { c in
                #expect(c.result == 0)
                #expect(!c.hasMore && c.bufferID == nil && !c.isNotification)
                seen.insert(c.userData)
            }
        }
        #expect(seen == Set((0..<20).map { UInt64(100 + $0) }))
        let left = ring.readyCompletions
        #expect(left == 0)
    }

    /// Five rounds of four NOPs through an 8-entry CQ of 32-byte entries: the index wraps
    /// twice, and every completion must come back with its own user data whether read
    /// through the 16-byte view (`reap`) or whole (`reapBig`). Read with a 16-byte stride,
    /// entry i would be half of entry i/2.
    @Test("32-byte completions (CQE32) are read at their stride, with their second half",
          .enabled(if: URingTest.hasBigCompletionRings, "a SINGLE_ISSUER|DEFER_TASKRUN|CQE32 ring (Linux 6.1+) was refused"))
    func bigCompletions() throws {
        var ring = try IOURing(IOURing.Options(entries: 4, requiresDeferTaskRun: true, bigCompletions: true))
        let (big, defers, cqEntries) = (ring.hasBigCompletions, ring.defersTaskRun, ring.completionEntries)
        #expect(big && defers)
        #expect(cqEntries == 8)
        var seen: [UInt64] = []
        for round in 0..<5 {
            for k in 0..<4 { try ring.prepareNop(userData: UInt64(1000 + round * 10 + k)) }
            try ring.submitAndWait(minimumCompletions: 4, timeout: .seconds(5))
            if round % 2 == 0 {
                ring.reapBig { c in
                    #expect(c.completion.result == 0)
                    #expect(c.extra == (0, 0), "a NOP leaves the second half empty, got \(c)")
                    seen.append(c.completion.userData)
                }
            } else {
                ring.reap { c in
                    #expect(c.result == 0)
                    seen.append(c.userData)
                }
            }
        }
        var expected: [UInt64] = []
        for r in 0..<5 { for k in 0..<4 { expected.append(UInt64(1000 + r * 10 + k)) } }
        #expect(seen == expected)
        let left = ring.readyCompletions
        #expect(left == 0)
    }

    @Test("a ring that requires DEFER_TASKRUN never falls back to a plain one")
    func requiredDeferTaskRunDoesNotFallBack() throws {
        let ring = try IOURing(IOURing.Options(entries: 4, singleIssuer: false, requiresDeferTaskRun: true))
        let defers = ring.defersTaskRun
        #expect(defers, "requiresDeferTaskRun implies SINGLE_ISSUER|DEFER_TASKRUN")
        let plain = try IOURing(IOURing.Options(entries: 4, singleIssuer: false))
        let (big, plainDefers) = (plain.hasBigCompletions, plain.defersTaskRun)
        #expect(!big && !plainDefers)
    }

    @Test("a wait with a timeout returns without completions")
    func waitTimesOut() throws {
        var ring = try IOURing(IOURing.Options(entries: 4))
        let start = ContinuousClock.now
        try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(20))
        let ready = ring.readyCompletions
        #expect(ready == 0)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("the plain fallback ring (no SINGLE_ISSUER) works too")
    func plainRing() throws {
        var ring = try IOURing(IOURing.Options(entries: 4, singleIssuer: false))
        let defers = ring.defersTaskRun
        #expect(!defers)
        try ring.prepareNop(userData: 7)
        let c = try ring.waitFor(userData: 7, timeout: .seconds(5))
        #expect(c?.result == 0)
    }

    @Test("probe reports what this kernel has")
    func probe() throws {
        let f = try IOURing.probeFeatures()
        print("io_uring features: \(f)")
        #expect(f.opcodes.contains(0))  // NOP is always there
        #expect(f.sendZeroCopy == f.opcodes.contains(47))
        #expect(f.receiveZeroCopy == f.opcodes.contains(58))
        if f.incrementalBuffers { #expect(f.providedBufferRings) }
        // Linux 6.18 (this project's target) has all of these.
        if f.opcodes.contains(58) {
            #expect(f.providedBufferRings && f.incrementalBuffers && f.bundles && f.sendZeroCopy)
        }
    }

    @Test("registering a provided-buffer ring twice under one group fails with a named error")
    func duplicateGroup() throws {
        let ring = try IOURing(IOURing.Options(entries: 4))
        guard URingTest.hasBufferRings else { _ = URingTest.skipReason("provided-buffer rings"); return }
        let a = try ProvidedBufferRing(ring: ring, group: 3, bufferCount: 4, bufferLength: 4096, incremental: false)
        #expect(a.entries == 4)
        #expect(throws: URingError.self) {
            _ = try ProvidedBufferRing(ring: ring, group: 3, bufferCount: 4, bufferLength: 4096, incremental: false)
        }
    }
}
