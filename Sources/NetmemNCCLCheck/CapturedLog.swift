import CNetmemNCCL
import Glibc
import Netmem
import Synchronization

/// Log lines the plugin wrote through the logger the harness gave it (warnings kept).
enum CapturedLog {
    static let lines = Mutex<[String]>([])

    static func install() {
        cnm_nccl_set_log_sink { level, _, line in
            guard let line, level <= Int32(CNM_NCCL_LOG_WARN.rawValue) else { return }
            let text = String(cString: line)
            CapturedLog.lines.withLockChecked { if $0.count < 200 { $0.append(text) } }
        }
    }

    /// Prints the plugin's warnings to standard error as they come (for the bench).
    static func installPrinting(prefix: String) {
        cnm_nccl_set_log_sink { level, _, line in
            guard let line, level <= Int32(CNM_NCCL_LOG_WARN.rawValue) else { return }
            let text = Array(("plugin: " + String(cString: line) + "\n").utf8)
            _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        }
    }

    static func take() -> [String] { lines.withLockChecked { l in defer { l.removeAll() }; return l } }
}
