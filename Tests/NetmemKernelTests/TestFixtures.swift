import Foundation
import Glibc

/// Runs a command and returns its exit status and standard output. Bounded: the
/// commands used here (`ip`) finish immediately.
@discardableResult
func sh(_ args: [String]) -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return (-1, "") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Whether this process may create network namespaces and veths (root with `ip`).
let canMakeNamespaces: Bool = {
    guard geteuid() == 0, sh(["ip", "-V"]).status == 0 else { return false }
    let probe = "nmkprobe\(getpid())"
    guard sh(["ip", "netns", "add", probe]).status == 0 else { return false }
    sh(["ip", "netns", "del", probe])
    return true
}()

/// A network namespace plus a veth pair whose end A stays in the root namespace and end
/// B lives in the namespace. Names are unique per process and call; `remove()` runs in
/// a defer at every use, so nothing is left behind even when a test fails.
struct VethNamespaceFixture {
    let namespace: String
    let rootEnd: String
    let nsEnd: String
    var namespacePath: String { "/var/run/netns/\(namespace)" }

    /// Creates the fixture, with `rootRX`/`rootTX` queues on the root end.
    static func make(rootRX: Int, rootTX: Int) -> VethNamespaceFixture? {
        let tag = String(UInt32(truncatingIfNeeded: getpid()) &* 31 &+ UInt32.random(in: 0..<0xffff), radix: 36)
        let f = VethNamespaceFixture(namespace: "nmk-\(tag)", rootEnd: "nmka\(tag)", nsEnd: "nmkb\(tag)")
        guard sh(["ip", "netns", "add", f.namespace]).status == 0 else { return nil }
        let ok = sh(["ip", "link", "add", f.rootEnd, "numrxqueues", String(rootRX), "numtxqueues", String(rootTX),
                     "type", "veth", "peer", "name", f.nsEnd, "numrxqueues", "1", "numtxqueues", "1"]).status == 0
            && sh(["ip", "link", "set", f.nsEnd, "netns", f.namespace]).status == 0
            && sh(["ip", "link", "set", f.rootEnd, "up"]).status == 0
            && sh(["ip", "-n", f.namespace, "link", "set", f.nsEnd, "up"]).status == 0
        guard ok else {
            f.remove()
            return nil
        }
        return f
    }

    func remove() {
        sh(["ip", "link", "del", rootEnd])  // removes the peer too
        sh(["ip", "netns", "del", namespace])
    }

    /// `ip -o link` ifindexes in the root namespace or in the fixture's namespace.
    func ipLinkIndexes(inNamespace: Bool) -> [UInt32: String] {
        let args = inNamespace ? ["ip", "-n", namespace, "-o", "link"] : ["ip", "-o", "link"]
        var out: [UInt32: String] = [:]
        for line in sh(args).output.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2)
            guard parts.count >= 2, let idx = UInt32(parts[0].trimmingCharacters(in: .whitespaces)) else { continue }
            let name = parts[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? ""
            out[idx] = name
        }
        return out
    }
}
