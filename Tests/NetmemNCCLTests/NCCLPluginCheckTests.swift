import Foundation
import Glibc
import Testing

/// The built plugin, driven end to end: by `netmem nccl check` (both processes), by the
/// independent C harness, and loaded where no Swift toolchain is visible.
@Suite("NCCL plugin end to end", .serialized)
struct NCCLPluginCheckTests {
    func check(_ plugin: String, netmem: String, environment: [String: String] = [:]) throws -> [String: Any] {
        let r = try NCCLTestSupport.run([netmem, "nccl", "check", "--plugin", plugin, "--json"], environment: environment)
        guard let report = NCCLTestSupport.json(r.stdout) else {
            Issue.record("no JSON from nccl check (status \(r.status)): \(r.stdout.suffix(2000)) \(r.stderr.suffix(2000))")
            return [:]
        }
        return report
    }

    func failedCases(_ report: [String: Any]) -> [String] {
        ((report["cases"] as? [[String: Any]]) ?? []).filter { ($0["passed"] as? Bool) != true }
            .map { "\($0["side"] ?? "?") \($0["name"] ?? "?"): \($0["detail"] ?? "")" }
    }

    @Test("netmem nccl check passes every case against libnccl-net-netmem.so", arguments: [
        [:],
        ["NETMEM_NCCL_SOCKETS": "3", "NETMEM_NCCL_CRC": "1", "NETMEM_NCCL_RX_CHUNK": "16K"],
        // Every payload through the pool and a copy, as before placements; one socket.
        ["NETMEM_NCCL_ZEROCOPY": "0", "NETMEM_NCCL_RX_BUFFERS": "4", "NETMEM_NCCL_PLACE_MIN": "0", "NETMEM_NCCL_SOCKETS": "1"],
    ])
    func checkPasses(environment: [String: String]) throws {
        guard let (netmem, plugin) = NCCLTestSupport.binaries() else { return }
        let report = try check(plugin, netmem: netmem, environment: environment)
        #expect(report["passed"] as? Bool == true, "failed: \(failedCases(report)) \(report["aborted"] ?? "")")
        #expect((report["cases_total"] as? Int ?? 0) >= 18, "every case ran on both sides")
        #expect(report["cases_failed"] as? Int == 0)
        #expect((report["bytes_checked"] as? Int ?? 0) > 100 << 20, "the size sweep and the many-comm case moved data")
        let names = ((report["cases"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        for word in ["sizes 0 to 16 MiB", "both directions at once on", "ncclInvalidUsage", "bad handles", "SIGKILL", "fds and threads"] {
            #expect(names.contains { $0.contains(word) }, "a case about \(word)")
        }
    }

    @Test("the check fails when a plugin damages data, overruns a buffer or misreports a size", arguments: ["flip", "overrun", "size"])
    func checkCatchesFaults(mode: String) throws {
        guard let (netmem, plugin) = NCCLTestSupport.binaries() else { return }
        guard let gcc = NCCLTestSupport.tool("gcc") else {
            print("SKIP: gcc is not installed; the faulty wrapper plugin cannot be built")
            return
        }
        let dir = NCCLTestSupport.temporaryDirectory()
        defer { _ = try? NCCLTestSupport.run(["/bin/rm", "-rf", dir]) }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/faulty-plugin.c").path
        let cc = try NCCLTestSupport.run([gcc, "-shared", "-fPIC", "-O2", "-o", dir + "/faulty.so", source, "-ldl"])
        try #require(cc.exitCode == 0, "gcc: \(cc.stderr)")
        let report = try check(dir + "/faulty.so", netmem: netmem,
                               environment: ["NCCL_FAULTY_INNER": plugin, "NCCL_FAULTY_MODE": mode])
        #expect(report["passed"] as? Bool == false, "a \(mode) fault went unnoticed")
        let failures = failedCases(report).joined(separator: " | ")
        let expected = ["flip": "differs from what was sent", "overrun": "past the end", "size": "test reported"][mode]!
        #expect(failures.contains(expected), "\(mode): \(failures)")
    }

    @Test("the check refuses a library that is not a v11 plugin")
    func notAPlugin() throws {
        guard let (netmem, _) = NCCLTestSupport.binaries() else { return }
        let candidates: [String] = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6"]
        let libc = candidates
            .first { access($0, R_OK) == 0 }
        guard let libc else { print("SKIP: no libc.so.6 at a known path"); return }
        let report = try check(libc, netmem: netmem)
        #expect(report["passed"] as? Bool == false)
        #expect((report["aborted"] as? String ?? "").contains("ncclNetPlugin_v11"))
    }

    @Test("an independent C harness written from the v11 ABI moves byte-exact data through the plugin")
    func cHarness() throws {
        guard let (_, plugin) = NCCLTestSupport.binaries() else { return }
        guard let gcc = NCCLTestSupport.tool("gcc") else { print("SKIP: gcc is not installed"); return }
        let dir = NCCLTestSupport.temporaryDirectory()
        defer { _ = try? NCCLTestSupport.run(["/bin/rm", "-rf", dir]) }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/nccl-abi-check.c").standardized.path
        let cc = try NCCLTestSupport.run([gcc, "-O2", "-Wall", "-o", dir + "/check", source, "-ldl"])
        try #require(cc.exitCode == 0, "gcc: \(cc.stderr)")
        for env in [["NETMEM_NCCL_IFNAME": "lo"], ["NETMEM_NCCL_IFNAME": "lo", "NETMEM_NCCL_SOCKETS": "1"]] {
            let r = try NCCLTestSupport.run([dir + "/check", plugin], environment: env, seconds: 120)
            #expect(r.exited && r.exitCode == 0, "C harness: \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("byte-exact"), "\(r.stdout)")
        }
    }

    @Test("the plugin needs no Swift library: ldd lists none, and it loads with the toolchain hidden")
    func noSwiftRuntimeNeeded() throws {
        guard let (_, plugin) = NCCLTestSupport.binaries() else { return }
        if let ldd = NCCLTestSupport.tool("ldd") {
            let r = try NCCLTestSupport.run([ldd, plugin])
            #expect(r.exitCode == 0)
            #expect(!r.stdout.contains("libswift"), "ldd: \(r.stdout)")
            #expect(!r.stdout.contains("libFoundation") && !r.stdout.contains("libdispatch"), "ldd: \(r.stdout)")
        }
        let nm = try NCCLTestSupport.run(["/bin/sh", "-c", "nm -D --defined-only '\(plugin)'"])
        if nm.exitCode == 0 {
            #expect(nm.stdout.contains(" D ncclNetPlugin_v11"), "nm -D: \(nm.stdout.prefix(500))")
            let globals = nm.stdout.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first.map { $0.uppercased() == $0 } ?? false }
            #expect(globals.count <= 4, "only the plugin tables and the statistics call are exported: \(globals)")
        }
        // Where no Swift runtime can be found: the toolchain directory hidden in a private mount namespace.
        guard let gcc = NCCLTestSupport.tool("gcc"), let unshare = NCCLTestSupport.tool("unshare"), getuid() == 0 else {
            print("SKIP: hiding the toolchain needs root, unshare and gcc")
            return
        }
        let swiftc = try NCCLTestSupport.run(["/bin/sh", "-c", "command -v swift"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !swiftc.isEmpty else { print("SKIP: no swift on PATH to hide"); return }
        let root = URL(fileURLWithPath: swiftc).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path  // …/usr/bin/swift → the toolchain root
        let dir = NCCLTestSupport.temporaryDirectory()
        defer { _ = try? NCCLTestSupport.run(["/bin/rm", "-rf", dir]) }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/nccl-abi-check.c").standardized.path
        _ = try NCCLTestSupport.run([gcc, "-O2", "-o", dir + "/check", source, "-ldl"])
        let script = "mount -t tmpfs none '\(root)' && ! ls '\(root)'/usr/lib/swift >/dev/null 2>&1 && LD_LIBRARY_PATH= NETMEM_NCCL_IFNAME=lo '\(dir)/check' '\(plugin)'"
        let r = try NCCLTestSupport.run([unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script], seconds: 120)
        if r.stderr.contains("Operation not permitted") || r.stderr.contains("unshare failed") {
            print("SKIP: no mount namespace here: \(r.stderr)")
            return
        }
        #expect(r.exitCode == 0 && r.stdout.contains("byte-exact"), "with \(root) hidden: \(r.stdout) \(r.stderr)")
    }
}
