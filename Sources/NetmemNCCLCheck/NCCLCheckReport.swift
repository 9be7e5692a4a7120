/// The outcome of `netmem nccl check`: one entry per case, from this process and from the
/// peer process, and the totals.
public struct NCCLCheckReport: Sendable {
    public struct Case: Sendable, Equatable {
        public let name: String
        public let passed: Bool
        public let seconds: Double
        public let detail: String
        /// "driver" (this process) or "peer".
        public let side: String
    }

    public var plugin = ""
    public var pluginName = ""
    public var seed: UInt64 = 0
    public var cases: [Case] = []
    public var messages = 0
    public var bytes = 0
    public var pluginStatistics: String?
    /// A failure that stopped the run before all cases ran.
    public var aborted: String?

    public var passed: Bool { aborted == nil && !cases.isEmpty && cases.allSatisfy(\.passed) }

    public var text: String {
        var lines = ["nccl check of \(plugin) (\(pluginName)), seed \(seed)"]
        for c in cases {
            let secs = (c.seconds * 1000).rounded() / 1000
            lines.append("\(c.passed ? "PASS" : "FAIL")  [\(c.side)] \(c.name) (\(secs) s)\(c.detail.isEmpty ? "" : ": " + c.detail)")
        }
        if let aborted { lines.append("ABORTED: \(aborted)") }
        let failed = cases.count { !$0.passed }
        lines.append("\(passed ? "passed" : "FAILED"): \(cases.count - failed) of \(cases.count) cases, \(messages) messages, \(bytes) bytes checked")
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var o = JSONObject()
        o["plugin"] = .string(plugin)
        o["plugin_name"] = .string(pluginName)
        o["seed"] = .int(Int(truncatingIfNeeded: seed))
        o["passed"] = .bool(passed)
        o["cases_total"] = .int(cases.count)
        o["cases_failed"] = .int(cases.count { !$0.passed })
        o["messages"] = .int(messages)
        o["bytes_checked"] = .int(bytes)
        if let aborted { o["aborted"] = .string(aborted) }
        o["cases"] = .array(cases.map { c in
            var e = JSONObject()
            e["name"] = .string(c.name)
            e["side"] = .string(c.side)
            e["passed"] = .bool(c.passed)
            e["seconds"] = .double(c.seconds)
            e["detail"] = .string(c.detail)
            return .object(e)
        })
        if let s = pluginStatistics { o["plugin_statistics"] = .raw(s) }
        return JSONValue.object(o).text
    }
}
