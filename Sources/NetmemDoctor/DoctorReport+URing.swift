import CNetmemLinux
import NetmemURing
import SystemPackage

extension DoctorReport {
    /// The io_uring lines, from `IOURing.probeFeatures()`.
    static func uringChecks() -> [DoctorCheck] {
        let f: IOURing.Features
        do {
            f = try IOURing.probeFeatures()
        } catch {
            let fix: String
            if let disabled = readTrimmed("/proc/sys/kernel/io_uring_disabled"), disabled != "0" {
                fix = "set kernel.io_uring_disabled=0 (sysctl); it is \(disabled)"
            } else {
                fix = "use a kernel built with CONFIG_IO_URING"
            }
            return [DoctorCheck(area: "io_uring", subject: "io_uring", status: .missing,
                                detail: "\(error)", checked: "io_uring_setup(4 entries)", fix: fix)]
        }
        var out: [DoctorCheck] = []
        let features = "features 0x\(String(f.kernelFeatures, radix: 16))"
        out.append(DoctorCheck(area: "io_uring", subject: "io_uring", status: .ok,
                               detail: "available; " + (f.highestOpcode.map { "\(features), highest opcode \($0)" }
                                   ?? "\(features); the opcode probe failed"),
                               checked: "io_uring_setup + IORING_REGISTER_PROBE", value: f.highestOpcode.map { String($0) }))
        out.append(DoctorCheck(area: "io_uring", subject: "provided-buffer rings",
                               status: f.providedBufferRings ? .ok : .missing,
                               detail: f.providedBufferRings ? "registering a ring works" : "refused: \(text(f.providedBufferRingError))",
                               checked: "IORING_REGISTER_PBUF_RING with 4 entries",
                               fix: f.providedBufferRings ? nil : "needs Linux 5.19 or later"))
        let incrementalDetail: String
        if f.incrementalBuffers {
            incrementalDetail = "IOU_PBUF_RING_INC accepted"
        } else if f.providedBufferRings {
            incrementalDetail = "refused: \(text(f.incrementalBuffersError))"
        } else {
            incrementalDetail = "not tried: provided-buffer rings are refused"
        }
        out.append(DoctorCheck(area: "io_uring", subject: "incremental buffer consumption",
                               status: f.incrementalBuffers ? .ok : .missing, detail: incrementalDetail,
                               checked: "IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_INC",
                               fix: f.incrementalBuffers ? nil : "needs Linux 6.12 or later"))
        out.append(DoctorCheck(area: "io_uring", subject: "recv/send bundles", status: f.bundles ? .ok : .missing,
                               detail: f.bundles ? "IORING_FEAT_RECVSEND_BUNDLE set" : "IORING_FEAT_RECVSEND_BUNDLE not set",
                               checked: "io_uring_params.features", fix: f.bundles ? nil : "needs Linux 6.10 or later"))
        let sendZC = CNM_IORING_OP_SEND_ZC
        out.append(DoctorCheck(area: "io_uring", subject: "SEND_ZC", status: f.sendZeroCopy ? .ok : .missing,
                               detail: f.sendZeroCopy ? "opcode \(sendZC) supported" : "opcode \(sendZC) not supported",
                               checked: "IORING_REGISTER_PROBE", fix: f.sendZeroCopy ? nil : "needs Linux 6.0 or later"))
        let recvZC = CNM_IORING_OP_RECV_ZC
        let ring = f.bigCompletionRings == true
        let detail: String
        if !f.receiveZeroCopy {
            detail = "opcode \(recvZC) not supported"
        } else if ring {
            detail = "opcode \(recvZC) supported; DEFER_TASKRUN|CQE32 rings work (a capable NIC is still needed, see the zcrx lines)"
        } else {
            detail = "opcode supported but a DEFER_TASKRUN|CQE32 ring was refused: "
                + (f.bigCompletionRingError.map { "\($0)" } ?? "not probed")
        }
        out.append(DoctorCheck(area: "io_uring", subject: "zcrx (RECV_ZC)", status: f.receiveZeroCopy && ring ? .ok : .missing,
                               detail: detail,
                               checked: "IORING_REGISTER_PROBE + io_uring_setup(SINGLE_ISSUER|DEFER_TASKRUN|CQE32)",
                               fix: f.receiveZeroCopy && ring ? nil : "needs Linux 6.15 or later built with CONFIG_IO_URING_ZCRX"))
        return out
    }

    /// "Invalid argument (errno 22)".
    static func text(_ errno: Errno?) -> String {
        guard let errno else { return "unknown error" }
        return "\(errno) (errno \(errno.rawValue))"
    }
}
