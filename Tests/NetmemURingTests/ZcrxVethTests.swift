import Foundation
import Glibc
import NetmemLab
import SystemPackage
import Testing
@testable import NetmemURing

@Suite struct ZcrxVethTests {
    /// A veth has no queue management ops: registration must fail and say the driver
    /// lacks support. The veth pair is created here with unique names and always deleted.
    @Test(.enabled(if: VethLab.unavailableReason == nil, "needs root and `ip` to create a veth pair"))
    func registrationOnVethSaysTheDriverLacksSupport() throws {
        let lab = try VethLab(tag: "zv", layout: .root(rxQueues: 2))
        defer { lab.remove() }
        let a = lab.ifA
        do {
            let q = try ZcrxQueue(.init(interface: a, queue: 1, area: .host(bytes: 1 << 20), refillEntries: 64))
            Issue.record("zcrx registration on veth unexpectedly succeeded (zcrx id \(q.zcrxID))")
        } catch {
            print("zcrx on veth: \(error)")
            guard case let .registrationRefused(interface, _, errno, reason) = error else {
                Issue.record("expected registrationRefused, got \(error)")
                return
            }
            #expect(interface == a)
            #expect([Errno.notSupported, .invalidArgument, .operationNotSupportedByDevice].contains(errno))
            #expect(reason.contains("support"))
        }
    }
}
