import NetmemGPU

extension DoctorReport {
    /// The CUDA lines: the driver (and its version), the devices, and whether device
    /// `ordinal` exports dma-bufs, found with `CUDADriver.probe()` and, on a device that
    /// says it can, by exporting and freeing 2 MiB. Opens no context otherwise.
    static func cudaChecks(device ordinal: Int = 0) -> [DoctorCheck] {
        func line(_ subject: String, _ status: DoctorCheck.Status, _ detail: String, checked: String,
                  fix: String? = nil, value: String? = nil) -> DoctorCheck {
            DoctorCheck(area: "cuda", subject: subject, status: status, detail: detail, checked: checked, fix: fix, value: value)
        }
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
                line("CUDA driver", .missing, "not available: \(why)", checked: "dlopen(libcuda.so.1), cuInit",
                     fix: "install the NVIDIA driver (GPU memory needs it); the host stand-in still runs the GPU logic"),
                line("CUDA devices", .missing, "not available: \(why)", checked: "cuDeviceGetCount",
                     fix: "install the NVIDIA driver, then check nvidia-smi", value: "0"),
                line("dma-buf export", .missing, "not available: \(why)",
                     checked: "CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, cuMemGetHandleForAddressRange",
                     fix: "install the NVIDIA driver with the open kernel modules and CUDA 11.7 or later"),
            ]
        }
        var out: [DoctorCheck] = []
        let major = probe.version / 1000, minor = (probe.version % 1000) / 10
        out.append(line("CUDA driver", .ok, "libcuda.so.1 loads, CUDA \(major).\(minor) (driver API \(probe.version))",
                        checked: "dlopen(libcuda.so.1), cuInit, cuDriverGetVersion", value: "\(probe.version)"))
        guard probe.deviceCount > 0 else {
            out.append(line("CUDA devices", .missing, "no CUDA device", checked: "cuDeviceGetCount",
                            fix: "check nvidia-smi and CUDA_VISIBLE_DEVICES", value: "0"))
            out.append(line("dma-buf export", .missing, "not available: no CUDA device",
                            checked: "CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED", fix: "needs a CUDA device (see the line above)"))
            return out
        }
        var names: [String] = []
        for i in 0..<probe.deviceCount {
            let name = (try? CUDADriver.describeDevice(i).name) ?? "unknown"
            names.append("\(i): \(name)")
        }
        out.append(line("CUDA devices", .ok, "\(probe.deviceCount): " + names.joined(separator: ", "),
                        checked: "cuDeviceGetCount, cuDeviceGetName", value: "\(probe.deviceCount)"))
        let device = min(max(ordinal, 0), probe.deviceCount - 1)
        if let d = try? CUDADriver.describeDevice(device), d.dmaBuf {
            // Prove it: allocate, export, free.
            do {
                let driver = try CUDADriver(device: device, requireDmaBuf: true)
                let region = try CUDAExporter(driver: driver, size: 2 << 20)
                out.append(line("dma-buf export", .ok,
                                "device \(device) (\(d.name)) exported 2 MiB of device memory as dma-buf fd \(region.fileDescriptor?.rawValue ?? -1)",
                                checked: "cuMemAlloc + cuMemGetHandleForAddressRange(DMA_BUF_FD)"))
            } catch {
                out.append(line("dma-buf export", .limited,
                                "device \(device) says it supports dma-buf, but the export failed: \(error)",
                                checked: "cuMemAlloc + cuMemGetHandleForAddressRange(DMA_BUF_FD)",
                                fix: "use the open NVIDIA kernel modules; meanwhile the pinned and bounce paths work"))
            }
        } else {
            out.append(line("dma-buf export", .missing,
                            "dma-buf export not supported by this driver/device (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED is 0 or cuMemGetHandleForAddressRange is missing)",
                            checked: "cuDeviceGetAttribute(CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED)",
                            fix: "use the open NVIDIA kernel modules and CUDA 11.7 or later; the pinned and bounce paths need no dma-buf"))
        }
        return out
    }
}
