import CNetmemLinux

extension DoctorReport {
    /// The memory lines: the memlock limit (pinned areas count against it) and the 2 MiB
    /// huge-page pool.
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
}
