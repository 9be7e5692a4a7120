import Foundation
import Glibc

/// Two network namespaces joined by a veth pair, made for one test and removed by
/// `remove()` (call it from a `defer`). Namespace A holds `ifA` (10.N.M.1), namespace B
/// holds `ifB` (10.N.M.2) with a permanent neighbour entry for A, so B can send to A even
/// while A's XDP program takes every frame (ARP replies included). IPv6 is off in both,
/// so no router solicitations or DAD probes arrive unasked.
final class VethLab {
    let nsA: String
    let nsB: String
    let ifA: String
    let ifB: String
    let macA = "02:4e:4d:00:00:01"
    let macB = "02:4e:4d:00:00:02"
    let ipA: String
    let ipB: String
    let macABytes: [UInt8] = [0x02, 0x4e, 0x4d, 0x00, 0x00, 0x01]
    let macBBytes: [UInt8] = [0x02, 0x4e, 0x4d, 0x00, 0x00, 0x02]

    /// Why tests that need this lab cannot run here, or nil when they can.
    static let unavailableReason: String? = {
        if geteuid() != 0 { return "needs root (CAP_NET_ADMIN, CAP_BPF) to create namespaces and attach XDP" }
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") && !FileManager.default.isExecutableFile(atPath: "/sbin/ip")
            && !FileManager.default.isExecutableFile(atPath: "/usr/bin/ip") {
            return "the `ip` tool (iproute2) is not installed"
        }
        if (try? VethLab.sh("command -v python3")) == nil { return "python3 is not installed" }
        // A namespace must be creatable.
        let probe = "nmxprobe\(getpid())"
        if (try? VethLab.sh("ip netns add \(probe) && ip netns del \(probe)")) == nil {
            return "creating a network namespace was refused"
        }
        return nil
    }()

    static var available: Bool {
        if let reason = unavailableReason { print("SKIP: \(reason)") }
        return unavailableReason == nil
    }

    init(tag: String) throws {
        let pid = Int(getpid()) % 100_000
        nsA = "nmx\(tag)a\(pid)"
        nsB = "nmx\(tag)b\(pid)"
        ifA = "nx\(tag)a\(pid)"
        ifB = "nx\(tag)b\(pid)"
        let h = abs(tag.hashValue) % 200 + 20
        ipA = "10.\(h).\(pid % 250 + 1).1"
        ipB = "10.\(h).\(pid % 250 + 1).2"
        do {
            try Self.sh("ip netns add \(nsA)")
            try Self.sh("ip netns add \(nsB)")
            for ns in [nsA, nsB] {
                try Self.sh("ip netns exec \(ns) sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'")
                try Self.sh("ip -n \(ns) link set lo up")
            }
            try Self.sh("ip link add \(ifA) address \(macA) type veth peer name \(ifB) address \(macB)")
            try Self.sh("ip link set \(ifA) netns \(nsA)")
            try Self.sh("ip link set \(ifB) netns \(nsB)")
            try Self.sh("ip -n \(nsA) addr add \(ipA)/24 dev \(ifA)")
            try Self.sh("ip -n \(nsB) addr add \(ipB)/24 dev \(ifB)")
            try Self.sh("ip -n \(nsA) link set \(ifA) up")
            try Self.sh("ip -n \(nsB) link set \(ifB) up")
            try Self.sh("ip -n \(nsB) neigh replace \(ipA) lladdr \(macA) dev \(ifB) nud permanent")
            try Self.sh("ip -n \(nsA) neigh replace \(ipB) lladdr \(macB) dev \(ifA) nud permanent")
        } catch {
            remove()
            throw error
        }
    }

    /// Deletes both namespaces (the veth pair goes with them). Safe to call twice.
    func remove() {
        _ = try? Self.sh("ip link del \(ifA) 2>/dev/null; ip netns del \(nsA) 2>/dev/null; ip netns del \(nsB) 2>/dev/null; true")
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var command: String
        var status: Int32
        var output: String
        var description: String { "`\(command)` exited \(status): \(output)" }
    }

    @discardableResult
    static func sh(_ command: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let out = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw CommandFailed(command: command, status: p.terminationStatus, output: out) }
        return out
    }

    /// Starts a python3 script in namespace B; the caller waits with `waitUntilExit()`.
    func startPython(in ns: String, _ script: String) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ip netns exec \(ns) python3 -c \"$NMX_SCRIPT\""]
        var env = ProcessInfo.processInfo.environment
        env["NMX_SCRIPT"] = script
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        return (p, pipe)
    }
}
