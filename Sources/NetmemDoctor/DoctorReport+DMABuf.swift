import Glibc

extension DoctorReport {
    /// The dma-buf exporter lines: /dev/udmabuf and the DMA heaps.
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
}
