import CNetmemNCCL
import Glibc
import Netmem

/// `netmem nccl check`: drives an NCCL network plugin (any library exporting
/// `ncclNetPlugin_v11`) the way NCCL does, as two processes over loopback — this one (the
/// driver) and a copy of this executable started as the peer. Every case of the issue
/// is run and reported; the peer's cases come back over the control channel.
public enum NCCLCheck {
    public struct Options: Sendable {
        public var plugin: String
        public var seed: UInt64
        /// Comm pairs per direction for the "several comms at once" case.
        public var comms: Int
        /// Arguments that make this executable the peer (`--control-fd 3` is appended).
        public var peerArguments: [String]

        public init(plugin: String, seed: UInt64, comms: Int = 3, peerArguments: [String]) {
            self.plugin = plugin
            self.seed = seed
            self.comms = comms
            self.peerArguments = peerArguments
        }
    }

    /// Runs every case and returns the report (never throws: a failure is a failed case,
    /// or `aborted` when the run could not go on).
    public static func run(_ options: Options) -> NCCLCheckReport {
        var report = NCCLCheckReport()
        report.plugin = options.plugin
        report.seed = options.seed
        useLoopback()
        CapturedLog.install()
        let plugin: NCCLPluginLibrary
        let peer: NCCLPeerProcess
        do throws(NCCLCheckError) {
            plugin = try NCCLPluginLibrary(path: options.plugin)
            report.pluginName = plugin.name
            peer = try NCCLPeerProcess(arguments: options.peerArguments)
        } catch {
            report.aborted = "\(error)"
            return report
        }
        let session = NCCLCheckSession(driver: true, plugin: plugin, channel: peer.channel, seed: options.seed,
                                       comms: options.comms)
        session.peer = peer
        session.runAll()
        report.cases = session.cases
        report.messages = session.messages
        report.bytes = session.bytes
        report.aborted = session.aborted
        report.pluginStatistics = plugin.statisticsJSON
        return report
    }

    /// The peer's side (`netmem nccl check-peer`); returns the exit status.
    public static func runPeer(plugin path: String, seed: UInt64, comms: Int, controlFD: Int32) -> Int32 {
        useLoopback()
        CapturedLog.install()
        let channel = NCCLControlChannel(fd: controlFD)
        let plugin: NCCLPluginLibrary
        do throws(NCCLCheckError) {
            plugin = try NCCLPluginLibrary(path: path)
        } catch {
            try? channel.send("ABORT \(error)")
            return 2
        }
        let session = NCCLCheckSession(driver: false, plugin: plugin, channel: channel, seed: seed, comms: comms)
        session.runAll()
        return session.aborted == nil ? 0 : 1
    }

    /// Both processes talk over loopback: the interface settings NCCL's socket transport
    /// and Netmem's plugin read, unless the caller chose one.
    static func useLoopback() {
        if getenv("NETMEM_NCCL_IFNAME") == nil { setenv("NETMEM_NCCL_IFNAME", "lo", 1) }
        if getenv("NCCL_SOCKET_IFNAME") == nil { setenv("NCCL_SOCKET_IFNAME", "lo", 1) }
    }
}
