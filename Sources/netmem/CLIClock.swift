import CNetmemLinux

/// Monotonic and CPU clocks.
enum CLIClock {
    static var now: Double { Double(cnm_now_ns()) / 1e9 }
    static var processCPU: Double { Double(cnm_process_cpu_ns()) / 1e9 }
}
