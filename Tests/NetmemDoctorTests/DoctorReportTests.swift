import Glibc
import NetmemGPU
import NetmemKernel
import NetmemURing
import Testing
@testable import NetmemDoctor

@Suite struct DoctorReportTests {
    let report = DoctorReport.build()

    @Test func memlockLineEqualsGetrlimit() throws {
        let line = try #require(report.check("memory", "memlock limit"))
        var limit = rlimit()
        #expect(getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit) == 0)
        let expected = limit.rlim_cur == rlim_t.max ? "unlimited" : String(limit.rlim_cur)
        #expect(line.value == expected)
        #expect(line.checked.contains("RLIMIT_MEMLOCK"))
        if line.status != .ok { #expect(line.fix?.contains("ulimit -l") == true) }
    }

    @Test func hugePageLineEqualsSysfs() throws {
        let line = try #require(report.check("memory", "huge pages (2 MiB)"))
        let sysfs = DoctorReport.readTrimmed("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
        #expect(line.value == sysfs)
        if line.status == .missing { #expect(line.fix?.contains("nr_hugepages") == true) }
    }

    @Test func everyInterfaceHasAnAFXDPDevmemAndZcrxLine() throws {
        var client = try NetdevClient()
        let devices = try client.devices()
        for d in devices {
            guard let name = NetworkInterface.name(ifindex: d.ifindex) else { continue }
            let xdp = report.check("af_xdp", name)
            let devmem = report.check("devmem", name)
            let zcrx = report.check("zcrx", name)
            // Interfaces created by other tests while the report was built may differ.
            if name.hasPrefix("nm") || name.hasPrefix("veth") { continue }
            #expect(xdp != nil && devmem != nil && zcrx != nil, "no doctor lines for \(name)")
            #expect(xdp?.value == d.xdpFeatures.description)
            #expect((xdp?.status == .ok) == d.xdpFeatures.contains(.xskZeroCopy))
        }
        // Loopback never supports devmem: the line must say what is missing and how to fix it.
        let lo = try #require(report.check("devmem", "lo"))
        #expect(lo.status == .missing)
        #expect(lo.fix?.contains("tcp-data-split on") == true)
    }

    @Test func uringLinesAgreeWithTheKernel() throws {
        let base = try #require(report.check("io_uring", "io_uring"))
        if base.status == .ok {
            for subject in ["provided-buffer rings", "incremental buffer consumption", "recv/send bundles", "SEND_ZC", "zcrx (RECV_ZC)"] {
                let line = try #require(report.check("io_uring", subject), "missing line \(subject)")
                #expect(line.status == .ok || line.fix != nil, "\(subject) is not ok but says no fix")
            }
        }
        // Every line that is not ok says how to fix it.
        for line in report.checks where line.status == .missing {
            #expect(line.fix != nil, "\(line.area)/\(line.subject) is missing without a fix")
        }
    }

    @Test func dmabufLinesMatchTheFilesystem() throws {
        let udmabuf = try #require(report.check("dma-buf", "/dev/udmabuf"))
        #expect((udmabuf.status == .ok) == (access("/dev/udmabuf", F_OK) == 0))
        let cuda = try #require(report.check("cuda", "CUDA driver"))
        #expect(cuda.checked.contains("libcuda.so.1"))
    }

    @Test func uringLinesSayWhatTheProbeFound() throws {
        let base = try #require(report.check("io_uring", "io_uring"))
        guard let f = try? IOURing.probeFeatures() else {
            #expect(base.status == .missing && base.fix != nil, "io_uring is unavailable, the line must say so")
            return
        }
        #expect(base.status == .ok)
        #expect(base.value == f.highestOpcode.map { String($0) })
        if let highest = f.highestOpcode { #expect(f.opcodes.allSatisfy { $0 <= highest }) }
        let expected: [(String, Bool)] = [
            ("provided-buffer rings", f.providedBufferRings), ("incremental buffer consumption", f.incrementalBuffers),
            ("recv/send bundles", f.bundles), ("SEND_ZC", f.sendZeroCopy),
            ("zcrx (RECV_ZC)", f.receiveZeroCopy && f.bigCompletionRings == true),
        ]
        for (subject, present) in expected {
            let line = try #require(report.check("io_uring", subject))
            #expect((line.status == .ok) == present, "\(subject): line says \(line.status), the probe says \(present)")
        }
        // The zcrx ring probe agrees with setting one up here.
        let ring = (try? IOURing(IOURing.Options(entries: 4, requiresDeferTaskRun: true, bigCompletions: true))) != nil
        #expect(f.bigCompletionRings == ring)
    }

    @Test(.enabled(if: !CUDADriver.libraryLoads, "an NVIDIA driver is installed here"))
    func cudaLinesWithoutADriverReportEachPieceMissing() {
        let lines = report.checks(in: "cuda")
        #expect(lines.map(\.subject) == ["CUDA driver", "CUDA devices", "dma-buf export"])
        for l in lines {
            #expect(l.status == .missing)
            #expect(l.detail == "not available: libcuda.so.1 not found")
        }
        #expect(lines.allSatisfy { $0.fix != nil }, "each missing CUDA line says how to get it")
    }

    @Test func linesAreGroupedByAreaInReportOrder() {
        let ranks = report.checks.map { DoctorReport.areas.firstIndex(of: $0.area) ?? DoctorReport.areas.count }
        #expect(ranks == ranks.sorted(), "areas out of order: \(report.checks.map(\.area))")
        for area in ["io_uring", "memory", "dma-buf", "cuda"] {
            #expect(!report.checks(in: area).isEmpty, "no \(area) lines")
        }
    }
}
