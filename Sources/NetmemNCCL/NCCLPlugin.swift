import CNetmemNCCL
import Glibc
import Synchronization

/// Process-wide facts of the plugin: its limits, the device it reports, and the C
/// strings NCCL reads from `getProperties` (kept for the life of the process).
enum NCCLPlugin {
    /// Requests per comm (NCCL_NET_MAX_REQUESTS; NCCL keeps at most 8 per comm in flight).
    static let requestsPerComm = Int(CNM_NCCL_NET_MAX_REQUESTS)
    /// The largest message: `test` reports sizes as `int`.
    static let maxMessageSize = 1 << 30

    private struct DeviceInfo: @unchecked Sendable {
        let device: NCCLNetDevice
        let name: UnsafeMutablePointer<CChar>
        let pciPath: UnsafeMutablePointer<CChar>?
    }

    private static let chosen = Mutex<DeviceInfo?>(nil)

    /// The device (chosen on first use with `selector`; the same for the whole process).
    static func device(selector: String?) throws(NCCLError) -> NCCLNetDevice {
        try deviceInfo(selector: selector).device
    }

    private static func deviceInfo(selector: String?) throws(NCCLError) -> DeviceInfo {
        try chosen.withLockChecked { c throws(NCCLError) -> DeviceInfo in
            if let c { return c }
            let d = try NCCLNetDevice.choose(selector: selector)
            let info = DeviceInfo(device: d, name: strdup(d.interface), pciPath: d.pciPath.map { strdup($0) })
            c = info
            return info
        }
    }

    /// Mirrors `getProperties` for device 0.
    static func properties(_ p: UnsafeMutablePointer<cnm_nccl_net_properties_v11_t>) throws(NCCLError) {
        let selector = try NCCLConfiguration(lookup: NCCLConfiguration.environment).interface
        let info = try deviceInfo(selector: selector)
        var props = cnm_nccl_net_properties_v11_t()
        props.name = info.name
        props.pciPath = info.pciPath
        props.guid = 0x4E4D_0000
        props.ptrSupport = Int32(CNM_NCCL_PTR_HOST)
        props.regIsGlobal = 0
        props.forceFlush = 0
        props.speed = Int32(clamping: info.device.speedMbps)
        props.port = 0
        props.latency = 0
        props.maxComms = 65536
        props.maxRecvs = 1
        props.netDeviceType = CNM_NCCL_NET_DEVICE_HOST
        props.netDeviceVersion = Int32(CNM_NCCL_NET_DEVICE_INVALID_VERSION)
        props.vProps.ndevs = 1
        props.vProps.devs.0 = 0
        props.maxP2pBytes = maxMessageSize
        props.maxCollBytes = maxMessageSize
        props.maxMultiRequestSize = 1
        p.pointee = props
    }
}
