import Foundation
import Glibc
import SystemPackage
import Testing
@testable import NetmemURing

/// Runs `ip` with `args`; true when it exited 0.
@discardableResult
private func ip(_ args: [String]) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["ip"] + args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

private let canMakeVeth: Bool = {
    guard geteuid() == 0 else { return false }
    let probe = "nmzp\(getpid() % 100_000)"
    guard ip(["link", "add", probe, "type", "veth", "peer", "name", probe + "b"]) else { return false }
    ip(["link", "del", probe])
    return true
}()

@Suite struct ZcrxVethTests {
    /// A veth has no queue management ops: registration must fail and say the driver
    /// lacks support. The veth pair is created here with unique names and always deleted.
    @Test(.enabled(if: canMakeVeth, "needs root and `ip` to create a veth pair"))
    func registrationOnVethSaysTheDriverLacksSupport() {
        let a = "nmz\(String(UInt32.random(in: 0..<0xff_ffff), radix: 36))"
        guard ip(["link", "add", a, "numrxqueues", "2", "type", "veth", "peer", "name", a + "p"]) else {
            Issue.record("creating veth \(a) failed although the probe succeeded")
            return
        }
        defer { ip(["link", "del", a]) }
        _ = ip(["link", "set", a, "up"])
        _ = ip(["link", "set", a + "p", "up"])
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
