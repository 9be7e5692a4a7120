/// What `netmem doctor` reports about CUDA: the driver (and its version), the devices,
/// and whether dma-buf export works. Building the report only probes: it loads the driver
/// and asks, opening no context.
public enum GPUDoctor {
    /// One line of the report.
    public struct Line: Sendable, Equatable {
        public enum Status: String, Sendable { case ok, missing, limited, info }
        public var subject: String
        public var status: Status
        public var detail: String
        /// How it was checked.
        public var checked: String
        /// How to fix a missing piece.
        public var fix: String?
        public var value: String?
    }

    /// The CUDA lines: driver, devices, and dma-buf export of device `ordinal` (all
    /// devices' names are listed).
    public static func lines(device ordinal: Int = 0) -> [Line] {
        let probe: CUDADriver.Probe
        do {
            probe = try CUDADriver.probe()
        } catch {
            let why: String
            switch error {
            case .driverNotFound: why = "libcuda.so.1 not found"
            default: why = error.description
            }
            return [
                Line(subject: "CUDA driver", status: .missing, detail: "not available: \(why)", checked: "dlopen(libcuda.so.1), cuInit",
                     fix: "install the NVIDIA driver (GPU memory needs it); the host stand-in still runs the GPU logic"),
                Line(subject: "CUDA devices", status: .missing, detail: "not available: \(why)", checked: "cuDeviceGetCount", value: "0"),
                Line(subject: "dma-buf export", status: .missing, detail: "not available: \(why)",
                     checked: "CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, cuMemGetHandleForAddressRange"),
            ]
        }
        var out: [Line] = []
        let major = probe.version / 1000, minor = (probe.version % 1000) / 10
        out.append(Line(subject: "CUDA driver", status: .ok, detail: "libcuda.so.1 loads, CUDA \(major).\(minor) (driver API \(probe.version))",
                        checked: "dlopen(libcuda.so.1), cuInit, cuDriverGetVersion", value: "\(probe.version)"))
        guard probe.deviceCount > 0 else {
            out.append(Line(subject: "CUDA devices", status: .missing, detail: "no CUDA device", checked: "cuDeviceGetCount",
                            fix: "check nvidia-smi and CUDA_VISIBLE_DEVICES", value: "0"))
            out.append(Line(subject: "dma-buf export", status: .missing, detail: "not available: no CUDA device",
                            checked: "CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED"))
            return out
        }
        var names: [String] = []
        for i in 0..<probe.deviceCount {
            let name = (try? CUDADriver.describeDevice(i).name) ?? "unknown"
            names.append("\(i): \(name)")
        }
        out.append(Line(subject: "CUDA devices", status: .ok, detail: "\(probe.deviceCount): " + names.joined(separator: ", "),
                        checked: "cuDeviceGetCount, cuDeviceGetName", value: "\(probe.deviceCount)"))
        let device = min(max(ordinal, 0), probe.deviceCount - 1)
        if let d = try? CUDADriver.describeDevice(device), d.dmaBuf {
            // Prove it: allocate, export, free.
            do {
                let driver = try CUDADriver(device: device, requireDmaBuf: true)
                let region = try CUDAExporter(driver: driver, size: 2 << 20)
                out.append(Line(subject: "dma-buf export", status: .ok,
                                detail: "device \(device) (\(d.name)) exported 2 MiB of device memory as dma-buf fd \(region.fileDescriptor?.rawValue ?? -1)",
                                checked: "cuMemAlloc + cuMemGetHandleForAddressRange(DMA_BUF_FD)"))
            } catch {
                out.append(Line(subject: "dma-buf export", status: .limited,
                                detail: "device \(device) says it supports dma-buf, but the export failed: \(error)",
                                checked: "cuMemAlloc + cuMemGetHandleForAddressRange(DMA_BUF_FD)",
                                fix: "use the open NVIDIA kernel modules; meanwhile the pinned and bounce paths work"))
            }
        } else {
            out.append(Line(subject: "dma-buf export", status: .missing,
                            detail: "dma-buf export not supported by this driver/device (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED is 0 or cuMemGetHandleForAddressRange is missing)",
                            checked: "cuDeviceGetAttribute(CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED)",
                            fix: "use the open NVIDIA kernel modules and CUDA 11.7 or later; the pinned and bounce paths need no dma-buf"))
        }
        return out
    }

    /// The report as text lines ("[ok] CUDA driver: …").
    public static func textLines(device ordinal: Int = 0) -> [String] {
        lines(device: ordinal).map { l in
            "[\(l.status.rawValue)] \(l.subject): \(l.detail)" + (l.fix.map { " (fix: \($0))" } ?? "")
        }
    }
}
