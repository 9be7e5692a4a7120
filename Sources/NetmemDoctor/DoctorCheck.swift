/// One line of `netmem doctor`: what was checked, how, what was found, and how to fix a
/// missing piece.
public struct DoctorCheck: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// Present and usable.
        case ok
        /// Absent; `fix` says what would provide it.
        case missing
        /// Present but limited (a low limit, copy mode only, …).
        case limited
        /// Informational only.
        case info
    }

    /// The subsystem: `io_uring`, `memory`, `af_xdp`, `devmem`, `zcrx`, `dma-buf`, `cuda`.
    public var area: String
    /// What the line is about (a feature, or a feature on an interface).
    public var subject: String
    public var status: Status
    /// What was found, in words.
    public var detail: String
    /// How it was checked (the call, file or attribute).
    public var checked: String
    /// How to fix it, when something is missing or limited.
    public var fix: String?
    /// A machine-readable value when the line has one (a limit in bytes, a count).
    public var value: String?

    public init(area: String, subject: String, status: Status, detail: String, checked: String,
                fix: String? = nil, value: String? = nil) {
        self.area = area
        self.subject = subject
        self.status = status
        self.detail = detail
        self.checked = checked
        self.fix = fix
        self.value = value
    }
}
