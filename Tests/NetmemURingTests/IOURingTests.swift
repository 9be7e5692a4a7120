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
