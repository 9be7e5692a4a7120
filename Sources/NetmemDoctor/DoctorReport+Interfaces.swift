import NetmemKernel

extension DoctorReport {
    /// Drivers known to implement the queue-management ops devmem TCP and zcrx need.
    public static let queueManagementDrivers: Set<String> = ["mlx5_core", "bnxt_en", "gve", "fbnic", "netdevsim"]

    /// One AF_XDP, one devmem and one zcrx line per interface, from the netdev family
    /// (xdp-features, queues), the sysfs driver link and the ethtool family (header split).
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
            let drv = NetworkInterface.driver(name: name)
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
}
