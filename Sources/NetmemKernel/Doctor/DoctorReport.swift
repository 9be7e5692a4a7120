import CNetmemLinux
import Glibc

/// One line of `netmem doctor`: what was checked, how, what was found, and how to fix a
/// missing piece.
public struct DoctorCheck: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// Present and usable.
        case ok
        /// Absent; `fix` says what would provide it.
        case missing
        /// Present but limited (a low limit, copy mode only, …).
        case limited
        /// Informational only.
        case info
    }

    /// The subsystem: `io_uring`, `memory`, `af_xdp`, `devmem`, `zcrx`, `dma-buf`, `cuda`.
    public var area: String
    /// What the line is about (a feature, or a feature on an interface).
    public var subject: String
    public var status: Status
    /// What was found, in words.
    public var detail: String
    /// How it was checked (the call, file or attribute).
    public var checked: String
    /// How to fix it, when something is missing or limited.
    public var fix: String?
    /// A machine-readable value when the line has one (a limit in bytes, a count).
    public var value: String?

    public init(area: String, subject: String, status: Status, detail: String, checked: String,
                fix: String? = nil, value: String? = nil) {
        self.area = area
        self.subject = subject
        self.status = status
        self.detail = detail
        self.checked = checked
        self.fix = fix
        self.value = value
    }
}

/// What this machine can do for Netmem's data paths. Building it only reads: it sets up
/// and closes a throwaway io_uring, asks netlink, and reads /proc and /sys.
public struct DoctorReport: Sendable {
    public var checks: [DoctorCheck]

    public init(checks: [DoctorCheck]) { self.checks = checks }

    /// The lines of one area.
    public func checks(in area: String) -> [DoctorCheck] { checks.filter { $0.area == area } }

    /// The first line about `subject` in `area`.
    public func check(_ area: String, _ subject: String) -> DoctorCheck? {
        checks.first { $0.area == area && $0.subject == subject }
    }

    /// Drivers known to implement the queue-management ops devmem TCP and zcrx need.
    public static let queueManagementDrivers: Set<String> = ["mlx5_core", "bnxt_en", "gve", "fbnic", "netdevsim"]

    /// Runs every check.
    public static func build() -> DoctorReport {
        var checks: [DoctorCheck] = []
        checks += uringChecks()
        checks += memoryChecks()
        checks += interfaceChecks()
        checks += dmabufChecks()
        checks += cudaChecks()
        // Group by area, keeping the order within an area.
        let order = ["io_uring", "memory", "af_xdp", "devmem", "zcrx", "dma-buf", "cuda"]
        let rank = { (c: DoctorCheck) in order.firstIndex(of: c.area) ?? order.count }
        let sorted = checks.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
        return DoctorReport(checks: sorted)
    }

    // MARK: io_uring

    static func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) + " (errno \(e))" }

    static func uringChecks() -> [DoctorCheck] {
        var caps = cnm_uring_caps()
        cnm_probe_uring(&caps)
        var out: [DoctorCheck] = []
        let disabled = readTrimmed("/proc/sys/kernel/io_uring_disabled")
        guard caps.setup_errno == 0 else {
            out.append(DoctorCheck(area: "io_uring", subject: "io_uring", status: .missing,
                                   detail: "io_uring_setup failed: \(errnoText(caps.setup_errno))",
                                   checked: "io_uring_setup(4 entries)",
                                   fix: disabled.map { $0 != "0" ? "set kernel.io_uring_disabled=0 (sysctl); it is \($0)" : "use a kernel built with CONFIG_IO_URING" }
                                       ?? "use a kernel built with CONFIG_IO_URING"))
            return out
        }
        out.append(DoctorCheck(area: "io_uring", subject: "io_uring", status: .ok,
                               detail: "available; features 0x\(String(caps.features, radix: 16)), highest opcode \(caps.last_op)",
                               checked: "io_uring_setup + IORING_REGISTER_PROBE", value: String(caps.last_op)))
        out.append(DoctorCheck(area: "io_uring", subject: "provided-buffer rings",
                               status: caps.pbuf_ring_errno == 0 ? .ok : .missing,
                               detail: caps.pbuf_ring_errno == 0 ? "registering a ring works" : "refused: \(errnoText(caps.pbuf_ring_errno))",
                               checked: "IORING_REGISTER_PBUF_RING with 8 entries",
                               fix: caps.pbuf_ring_errno == 0 ? nil : "needs Linux 5.19 or later"))
        out.append(DoctorCheck(area: "io_uring", subject: "incremental buffer consumption",
                               status: caps.pbuf_inc_errno == 0 ? .ok : .missing,
                               detail: caps.pbuf_inc_errno == 0 ? "IOU_PBUF_RING_INC accepted" : "refused: \(errnoText(caps.pbuf_inc_errno))",
                               checked: "IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_INC",
                               fix: caps.pbuf_inc_errno == 0 ? nil : "needs Linux 6.12 or later"))
        let bundles = caps.features & UInt32(CNM_ZC_IORING_FEAT_RECVSEND_BUNDLE) != 0
        out.append(DoctorCheck(area: "io_uring", subject: "recv/send bundles", status: bundles ? .ok : .missing,
                               detail: bundles ? "IORING_FEAT_RECVSEND_BUNDLE set" : "IORING_FEAT_RECVSEND_BUNDLE not set",
                               checked: "io_uring_params.features", fix: bundles ? nil : "needs Linux 6.10 or later"))
        let ops = withUnsafeBytes(of: caps.op_supported) { Array($0) }
        let sendZC = caps.probe_errno == 0 && ops[Int(CNM_ZC_IORING_OP_SEND_ZC)] != 0
        out.append(DoctorCheck(area: "io_uring", subject: "SEND_ZC", status: sendZC ? .ok : .missing,
                               detail: sendZC ? "opcode \(CNM_ZC_IORING_OP_SEND_ZC) supported" : "opcode \(CNM_ZC_IORING_OP_SEND_ZC) not supported",
                               checked: "IORING_REGISTER_PROBE", fix: sendZC ? nil : "needs Linux 6.0 or later"))
        let recvZC = caps.probe_errno == 0 && ops[Int(CNM_ZC_IORING_OP_RECV_ZC)] != 0
        let zcRing = caps.zcrx_ring_errno == 0
        out.append(DoctorCheck(area: "io_uring", subject: "zcrx (RECV_ZC)", status: recvZC && zcRing ? .ok : .missing,
                               detail: recvZC
                                   ? (zcRing ? "opcode \(CNM_ZC_IORING_OP_RECV_ZC) supported; DEFER_TASKRUN|CQE32 rings work (a capable NIC is still needed, see the zcrx lines)"
                                             : "opcode supported but a DEFER_TASKRUN|CQE32 ring was refused: \(errnoText(caps.zcrx_ring_errno))")
                                   : "opcode \(CNM_ZC_IORING_OP_RECV_ZC) not supported",
                               checked: "IORING_REGISTER_PROBE + io_uring_setup(SINGLE_ISSUER|DEFER_TASKRUN|CQE32)",
                               fix: recvZC && zcRing ? nil : "needs Linux 6.15 or later built with CONFIG_IO_URING_ZCRX"))
        return out
    }

    // MARK: memory

    static func memoryChecks() -> [DoctorCheck] {
        var out: [DoctorCheck] = []
        let limit = cnm_memlock_limit()
        let value: String
        let status: DoctorCheck.Status
        let detail: String
        if limit == Int64.max {
            value = "unlimited"; status = .ok; detail = "unlimited"
        } else if limit < 0 {
            value = "unknown"; status = .limited; detail = "getrlimit failed"
        } else {
            value = String(limit)
            status = limit >= 64 << 20 ? .ok : .limited
            detail = "\(limit) bytes (\(limit >> 10) KiB)"
        }
        out.append(DoctorCheck(area: "memory", subject: "memlock limit", status: status, detail: detail,
                               checked: "getrlimit(RLIMIT_MEMLOCK) soft limit",
                               fix: status == .ok ? nil : "raise it with `ulimit -l unlimited` or LimitMEMLOCK= in the service unit (pinned areas, UMEMs and zcrx areas count against it)",
                               value: value))
        let base = "/sys/kernel/mm/hugepages/hugepages-2048kB"
        if let total = readTrimmed("\(base)/nr_hugepages").flatMap({ Int($0) }) {
            let free = readTrimmed("\(base)/free_hugepages").flatMap { Int($0) } ?? 0
            out.append(DoctorCheck(area: "memory", subject: "huge pages (2 MiB)", status: total > 0 ? .ok : .missing,
                                   detail: "\(total) reserved, \(free) free",
                                   checked: "\(base)/nr_hugepages and free_hugepages",
                                   fix: total > 0 ? nil : "reserve some: `echo 512 > /proc/sys/vm/nr_hugepages` (1 GiB)",
                                   value: String(total)))
        } else {
            out.append(DoctorCheck(area: "memory", subject: "huge pages (2 MiB)", status: .missing,
                                   detail: "no 2 MiB hugetlb pool", checked: "\(base)",
                                   fix: "use a kernel with CONFIG_HUGETLBFS"))
        }
        return out
    }

    // MARK: interfaces: AF_XDP, devmem, zcrx

    static func driver(of name: String) -> String? {
        var buf = [CChar](repeating: 0, count: 512)
        let n = readlink("/sys/class/net/\(name)/device/driver", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.split(separator: "/").last.map(String.init)
    }

    static func interfaceChecks() -> [DoctorCheck] {
        var out: [DoctorCheck] = []
        var devices: [NetdevDevice] = []
        var queues: [NetdevQueue] = []
        do {
            var client = try NetdevClient()
            devices = try client.devices()
            queues = (try? client.queues()) ?? []
        } catch {
            out.append(DoctorCheck(area: "af_xdp", subject: "netdev netlink family", status: .missing,
                                   detail: "\(error)", checked: "CTRL_CMD_GETFAMILY netdev + dev-get dump",
                                   fix: "needs Linux 6.3 or later"))
            return out
        }
        var ethtool = try? EthtoolClient()
        for d in devices {
            let name = NetworkInterface.name(ifindex: d.ifindex) ?? "ifindex \(d.ifindex)"
            // AF_XDP
            let zc = d.xdpFeatures.contains(.xskZeroCopy)
            let native = d.xdpFeatures.contains(.basic) && d.xdpFeatures.contains(.redirect)
            out.append(DoctorCheck(
                area: "af_xdp", subject: name, status: zc ? .ok : .limited,
                detail: zc ? "zero-copy and copy mode (xdp-features: \(d.xdpFeatures))"
                    : native ? "copy mode with native XDP (xdp-features: \(d.xdpFeatures)); no zero-copy"
                    : "copy mode with generic XDP only (xdp-features: \(d.xdpFeatures))",
                checked: "netdev dev-get xdp-features",
                fix: zc ? nil : "zero-copy needs a driver with XSK zero-copy (ice, i40e, mlx5, ixgbe, igc, …)",
                value: d.xdpFeatures.description))
            // devmem / zcrx readiness
            var missing: [String] = []
            var found: [String] = []
            let drv = driver(of: name)
            if let drv {
                found.append("driver \(drv)")
                if !queueManagementDrivers.contains(drv) {
                    missing.append("driver \(drv) is not known to implement queue management ops (devmem and zcrx need them: mlx5, bnxt, gve, fbnic)")
                }
            } else {
                missing.append("virtual device (no driver with queue management ops)")
            }
            let rxQueues = queues.filter { $0.ifindex == d.ifindex && $0.type == .rx }.count
            found.append("\(rxQueues) RX queue(s) listed")
            if rxQueues < 2 {
                missing.append("fewer than 2 RX queues (one queue must stay for ordinary traffic; `ethtool -L \(name) combined N`)")
            }
            var split: TCPDataSplit = .unknown
            if ethtool != nil, let rings = try? ethtool!.rings(ifindex: d.ifindex) { split = rings.tcpDataSplit }
            found.append("tcp-data-split \(split.rawValue)")
            if split != .enabled {
                missing.append("header split is \(split.rawValue) (`ethtool -G \(name) tcp-data-split on`; check with `ethtool -g \(name)`)")
            }
            let ready = missing.isEmpty
            for area in ["devmem", "zcrx"] {
                out.append(DoctorCheck(
                    area: area, subject: name, status: ready ? .ok : .missing,
                    detail: (ready ? "ready: " : "not ready: ") + found.joined(separator: "; "),
                    checked: "sysfs driver link, netdev queue-get, ethtool rings-get tcp-data-split",
                    fix: ready ? nil : missing.joined(separator: "; "),
                    value: String(rxQueues)))
            }
        }
        return out
    }

    // MARK: dma-buf exporters, CUDA

    static func dmabufChecks() -> [DoctorCheck] {
        var out: [DoctorCheck] = []
        let udmabuf = access("/dev/udmabuf", F_OK) == 0
        out.append(DoctorCheck(area: "dma-buf", subject: "/dev/udmabuf", status: udmabuf ? .ok : .missing,
                               detail: udmabuf ? "present: memfd memory can become a dma-buf" : "absent",
                               checked: "access(/dev/udmabuf)",
                               fix: udmabuf ? nil : "`modprobe udmabuf` (CONFIG_UDMABUF)"))
        var heaps: [String] = []
        if let dir = opendir("/dev/dma_heap") {
            while let e = readdir(dir) {
                let n = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if n != "." && n != ".." { heaps.append(n) }
            }
            closedir(dir)
        }
        out.append(DoctorCheck(area: "dma-buf", subject: "/dev/dma_heap", status: heaps.isEmpty ? .missing : .ok,
                               detail: heaps.isEmpty ? "no DMA heaps" : "heaps: \(heaps.sorted().joined(separator: ", "))",
                               checked: "readdir(/dev/dma_heap)",
                               fix: heaps.isEmpty ? "use a kernel with CONFIG_DMABUF_HEAPS_SYSTEM" : nil,
                               value: String(heaps.count)))
        return out
    }

    static func cudaChecks() -> [DoctorCheck] {
        var err = [CChar](repeating: 0, count: 256)
        let ok = cnm_probe_dlopen("libcuda.so.1", &err, err.count) == 1
        let text = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return [DoctorCheck(area: "cuda", subject: "CUDA driver", status: ok ? .ok : .missing,
                            detail: ok ? "libcuda.so.1 loads" : "libcuda.so.1 does not load: \(text)",
                            checked: "dlopen(libcuda.so.1)",
                            fix: ok ? nil : "install the NVIDIA driver (GPU memory as a dma-buf needs it)")]
    }

    static func readTrimmed(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buf, buf.count)
        guard n >= 0 else { return nil }
        var s = String(decoding: buf[0..<n], as: UTF8.self)
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return s
    }
}
