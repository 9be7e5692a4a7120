import Foundation
import Glibc
import Synchronization

/// A veth pair made with iproute2 for one test or benchmark, and removed by `remove()`
/// (also on `deinit`, and safe to call twice), so nothing is left behind even when the
/// caller fails half-way. The one fixture of its kind: the AF_XDP tests, the netdev and
/// zcrx tests and `netmem bench xdp` all use it.
///
/// Names are unique per process and lab (a counter and the process id), short enough for
/// the kernel's 15-byte interface names.
package final class VethLab: @unchecked Sendable {
    /// Where the two ends live.
    package enum Layout: Sendable {
        /// End A in namespace `namespaceA` (address `ipA`), end B in `namespaceB` (`ipB`),
        /// one /24; permanent neighbour entries both ways, so B can send to A even while an
        /// XDP program on A takes every frame (ARP replies included); IPv6 off in both, so
        /// no router solicitations or DAD probes arrive unasked.
        case twoNamespaces
        /// End A in the caller's namespace with `rxQueues`/`txQueues` queues, end B (one
        /// queue each way) in `namespaceB`. Both up, no addresses.
        case rootAndNamespace(rxQueues: Int, txQueues: Int)
        /// Both ends in the caller's namespace, end A with `rxQueues` receive queues. Both
        /// up, no addresses.
        case root(rxQueues: Int)
    }

    package let layout: Layout
    /// The namespace of end A; nil when A is in the caller's namespace.
    package let namespaceA: String?
    /// The namespace of end B; nil when B is in the caller's namespace.
    package let namespaceB: String?
    package let ifA: String
    package let ifB: String
    package let macA: [UInt8]
    package let macB: [UInt8]
    /// IPv4 addresses (dotted) of the ends, for `.twoNamespaces`.
    package let ipA: String
    package let ipB: String
    private let removed = Mutex(false)

    private static let labs = Atomic<Int>(0)

    /// Makes the pair. `tag` (at most 3 characters) goes into the names so a leftover
    /// says who made it.
    ///
    /// - Throws: `VethLabError.commandFailed` with the step that failed; whatever was made
    ///   before it is removed first.
    package init(tag: String, layout: Layout) throws(VethLabError) {
        precondition(tag.utf8.count <= 3 && tag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }),
                     "a lab tag is at most 3 letters or digits")
        let n = Self.labs.add(1, ordering: .relaxed).newValue % 100
        let pid = Int(getpid()) % 100_000
        self.layout = layout
        let stem = "nm\(tag)\(n)"
        ifA = "\(stem)a\(pid)"
        ifB = "\(stem)b\(pid)"
        macA = [0x02, 0x4e, 0x4d, UInt8(n), 0x00, 0x01]
        macB = [0x02, 0x4e, 0x4d, UInt8(n), 0x00, 0x02]
        ipA = "10.\(200 + n % 50).\(pid % 250 + 1).1"
        ipB = "10.\(200 + n % 50).\(pid % 250 + 1).2"
        switch layout {
        case .twoNamespaces:
            namespaceA = "\(stem)na\(pid)"
            namespaceB = "\(stem)nb\(pid)"
        case .rootAndNamespace:
            namespaceA = nil
            namespaceB = "\(stem)nb\(pid)"
        case .root:
            namespaceA = nil
            namespaceB = nil
        }
        do throws(VethLabError) {
            try build()
        } catch {
            remove()
            throw error
        }
    }

    deinit { remove() }

    private func build() throws(VethLabError) {
        let mA = Self.text(mac: macA)
        let mB = Self.text(mac: macB)
        switch layout {
        case .twoNamespaces:
            let (nsA, nsB) = (namespaceA!, namespaceB!)
            try Self.run("ip netns add \(nsA)")
            try Self.run("ip netns add \(nsB)")
            for ns in [nsA, nsB] {
                try Self.run("ip netns exec \(ns) sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'")
                try Self.run("ip -n \(ns) link set lo up")
            }
            try Self.run("ip link add \(ifA) address \(mA) type veth peer name \(ifB) address \(mB)")
            try Self.run("ip link set \(ifA) netns \(nsA)")
            try Self.run("ip link set \(ifB) netns \(nsB)")
            try Self.run("ip -n \(nsA) addr add \(ipA)/24 dev \(ifA)")
            try Self.run("ip -n \(nsB) addr add \(ipB)/24 dev \(ifB)")
            try Self.run("ip -n \(nsA) link set \(ifA) up")
            try Self.run("ip -n \(nsB) link set \(ifB) up")
            try Self.run("ip -n \(nsB) neigh replace \(ipA) lladdr \(mA) dev \(ifB) nud permanent")
            try Self.run("ip -n \(nsA) neigh replace \(ipB) lladdr \(mB) dev \(ifA) nud permanent")
        case let .rootAndNamespace(rx, tx):
            let nsB = namespaceB!
            try Self.run("ip netns add \(nsB)")
            try Self.run("ip link add \(ifA) numrxqueues \(rx) numtxqueues \(tx) address \(mA) type veth peer name \(ifB) numrxqueues 1 numtxqueues 1 address \(mB)")
            try Self.run("ip link set \(ifB) netns \(nsB)")
            try Self.run("ip link set \(ifA) up")
            try Self.run("ip -n \(nsB) link set \(ifB) up")
        case let .root(rx):
            try Self.run("ip link add \(ifA) numrxqueues \(rx) address \(mA) type veth peer name \(ifB) address \(mB)")
            try Self.run("ip link set \(ifA) up")
            try Self.run("ip link set \(ifB) up")
        }
    }

    /// Deletes the pair and the namespaces. Safe to call twice.
    package func remove() {
        let first = removed.withLock { r in
            defer { r = true }
            return !r
        }
        guard first else { return }
        var steps = [namespaceA.map { "ip -n \($0) link del \(ifA)" } ?? "ip link del \(ifA)"]
        for ns in [namespaceA, namespaceB].compactMap({ $0 }) { steps.append("ip netns del \(ns)") }
        for step in steps { _ = try? Self.run(step + " 2>/dev/null") }
    }

    /// The path of a namespace's file, as `ip netns add` makes it.
    package static func path(ofNamespace name: String) -> String { "/var/run/netns/\(name)" }

    /// `ip -o link` in `namespace` (nil: the caller's): ifindex → name.
    package static func linkIndexes(namespace: String?) -> [UInt32: String] {
        let command = namespace.map { "ip -n \($0) -o link" } ?? "ip -o link"
        var out: [UInt32: String] = [:]
        for line in ((try? run(command)) ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2)
            guard parts.count >= 2, let index = UInt32(parts[0].trimmingCharacters(in: .whitespaces)) else { continue }
            out[index] = parts[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? ""
        }
        return out
    }

    /// Starts `python3 -c script` inside `namespace`; the caller waits with
    /// `waitUntilExit()` and reads the pipe (standard output and error).
    package func startPython(in namespace: String, _ script: String) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ip netns exec \(namespace) python3 -c \"$NETMEM_LAB_SCRIPT\""]
        var environment = ProcessInfo.processInfo.environment
        environment["NETMEM_LAB_SCRIPT"] = script
        p.environment = environment
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        return (p, pipe)
    }

    // MARK: Whether labs can be made here

    /// Why a lab cannot be made here (not root, no iproute2, namespaces refused), or nil.
    package static let unavailableReason: String? = {
        if geteuid() != 0 { return "needs root (CAP_NET_ADMIN) to create namespaces and veth pairs" }
        if (try? run("command -v ip")) == nil { return "the `ip` tool (iproute2) is not installed" }
        let probe = "nmprobe\(getpid())"
        if (try? run("ip netns add \(probe) && ip netns del \(probe)")) == nil {
            return "creating a network namespace was refused"
        }
        return nil
    }()

    /// Why labs with a Python peer cannot run here, or nil.
    package static let pythonUnavailableReason: String? = {
        if let reason = unavailableReason { return reason }
        if (try? run("command -v python3")) == nil { return "python3 is not installed" }
        return nil
    }()

    // MARK: Commands

    /// Runs `command` with `/bin/sh -c` and returns its output (standard output and error).
    ///
    /// - Throws: `VethLabError.commandFailed` when it exits non-zero or cannot start.
    @discardableResult
    package static func run(_ command: String) throws(VethLabError) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { throw .commandFailed(command: command, status: -1, output: "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw .commandFailed(command: command, status: p.terminationStatus, output: output)
        }
        return output
    }

    private static func text(mac: [UInt8]) -> String {
        mac.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: ":")
    }
}

/// Why a lab step failed.
package enum VethLabError: Error, Sendable, Equatable, CustomStringConvertible {
    case commandFailed(command: String, status: Int32, output: String)

    package var description: String {
        switch self {
        case let .commandFailed(command, status, output):
            let detail = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return "`\(command)` exited \(status)\(detail.isEmpty ? "" : ": \(detail)") (is iproute2 installed, and are you root?)"
        }
    }
}
