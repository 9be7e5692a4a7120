import Glibc

/// What this machine can do for Netmem's data paths, one `DoctorCheck` per line, grouped
/// by area. Each area asks its data path's own probe: `IOURing.probeFeatures()` for
/// io_uring, the netdev and ethtool netlink clients for AF_XDP, devmem and zcrx,
/// `CUDADriver.probe()` for CUDA. Building it only looks: it sets up and closes
/// throwaway io_urings, asks netlink, reads /proc and /sys, loads the CUDA driver (and,
/// on a GPU that says it can, exports and frees 2 MiB to prove dma-buf export).
public struct DoctorReport: Sendable {
    public var checks: [DoctorCheck]

    public init(checks: [DoctorCheck]) { self.checks = checks }

    /// The order of the areas in a report.
    public static let areas = ["io_uring", "memory", "af_xdp", "devmem", "zcrx", "dma-buf", "cuda"]

    /// Runs every check; the CUDA lines are about device `cudaDevice`.
    public static func build(cudaDevice: Int = 0) -> DoctorReport {
        var checks: [DoctorCheck] = []
        checks += uringChecks()
        checks += memoryChecks()
        checks += interfaceChecks()
        checks += dmabufChecks()
        checks += cudaChecks(device: cudaDevice)
        // Group by area, keeping the order within an area.
        let rank = { (c: DoctorCheck) in areas.firstIndex(of: c.area) ?? areas.count }
        let sorted = checks.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
        return DoctorReport(checks: sorted)
    }

    /// The lines of one area.
    public func checks(in area: String) -> [DoctorCheck] { checks.filter { $0.area == area } }

    /// The first line about `subject` in `area`.
    public func check(_ area: String, _ subject: String) -> DoctorCheck? {
        checks.first { $0.area == area && $0.subject == subject }
    }

    /// The first 256 bytes of a /proc or /sys file, trailing whitespace removed; nil when
    /// it cannot be read.
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
