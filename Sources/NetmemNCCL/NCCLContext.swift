import CNetmemNCCL
import Glibc
import Synchronization

/// What one `init` sets up (NCCL calls it once per communicator; version-10 and older
/// NCCL once per process): the settings read from the environment, the device, NCCL's
/// logger. `finalize` ends it, closing any connect NCCL left half done.
final class NCCLContext: @unchecked Sendable {
    enum Level {
        case warn, info, trace

        var nccl: Int32 {
            switch self {
            case .warn: return Int32(CNM_NCCL_LOG_WARN.rawValue)
            case .info: return Int32(CNM_NCCL_LOG_INFO.rawValue)
            case .trace: return Int32(CNM_NCCL_LOG_TRACE.rawValue)
            }
        }
    }

    let commID: UInt64
    let configuration: NCCLConfiguration
    let device: NCCLNetDevice
    /// NCCL's `ncclDebugLogger_t`, untyped (nil: log lines are dropped).
    private let logger: UnsafeRawPointer?
    /// Connects in progress started through this context (ids in `NCCLConnector.pending`).
    let pendingConnects = Mutex<Set<UInt64>>([])

    init(commID: UInt64, configuration: NCCLConfiguration, device: NCCLNetDevice, logger: UnsafeRawPointer?) {
        self.commID = commID
        self.configuration = configuration
        self.device = device
        self.logger = logger
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    /// Writes a line through NCCL's logger ("NET/Netmem …", subsystem NET).
    func log(_ level: Level, _ message: String) {
        guard let logger else { return }
        let flags = CNM_NCCL_SUBSYS_NET | (level == .info ? CNM_NCCL_SUBSYS_INIT : 0)
        cnm_nccl_log(logger, level.nccl, flags, "netmem", 0, "NET/Netmem " + message)
    }
}
