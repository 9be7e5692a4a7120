/// A small JSON writer (the harness has no other use for a JSON library).
public struct JSONObject: Sendable {
    var entries: [(String, JSONValue)] = []
    public init() {}
    public subscript(key: String) -> JSONValue? {
        get { entries.first { $0.0 == key }?.1 }
        set {
            entries.removeAll { $0.0 == key }
            if let newValue { entries.append((key, newValue)) }
        }
    }
}

public indirect enum JSONValue: Sendable {
    case string(String), int(Int), double(Double), bool(Bool), array([JSONValue]), object(JSONObject)
    /// Already-encoded JSON, inserted as is.
    case raw(String)

    public var text: String {
        switch self {
        case let .string(s): return Self.quote(s)
        case let .int(v): return String(v)
        case let .double(v): return v.isFinite ? String((v * 1e6).rounded() / 1e6) : "null"
        case let .bool(b): return b ? "true" : "false"
        case let .array(a): return "[" + a.map(\.text).joined(separator: ",") + "]"
        case let .object(o): return "{" + o.entries.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        case let .raw(r): return r
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
