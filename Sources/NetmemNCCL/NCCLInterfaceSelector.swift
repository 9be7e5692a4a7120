/// NCCL_SOCKET_IFNAME-style interface rules: a comma list of name prefixes; `=name`
/// matches exactly; a leading `^` turns the whole list into exclusions.
struct NCCLInterfaceSelector {
    let exclude: Bool
    let exact: Bool
    let names: [String]

    init(_ text: String) {
        var t = Substring(text)
        exclude = t.hasPrefix("^")
        if exclude { t = t.dropFirst() }
        exact = t.hasPrefix("=")
        if exact { t = t.dropFirst() }
        names = t.split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    func matches(_ name: String) -> Bool {
        let hit = names.contains { exact ? name == $0 : name.hasPrefix($0) }
        return exclude ? !hit : hit
    }
}
