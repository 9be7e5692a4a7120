import SystemPackage

/// Everything that can go wrong talking generic netlink: what the kernel refused (with its
/// extended-ACK text verbatim) and replies that do not parse (truncated, wrong lengths).
/// A malformed reply is never a crash.
public enum NetlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A header or attribute claims more bytes than the buffer holds.
    case truncated(what: String, needed: Int, available: Int)
    /// A length field that cannot be right (below its header size, or a fixed-size
    /// attribute of the wrong size).
    case badLength(what: String, length: Int, reason: String)
    /// A field whose value cannot be right (an error code that is not a negated errno).
    case badValue(what: String, value: Int, reason: String)
    /// A reply of a type this request does not expect.
    case unexpectedMessage(type: UInt16, request: String)
    /// The kernel refused the request. `message` is the extended-ACK text (verbatim),
    /// `attributeOffset` the offset of the offending attribute, when the kernel said.
    case kernel(request: String, errno: Errno, message: String?, attributeOffset: UInt32?)
    /// The generic-netlink family is not registered in this kernel (or namespace).
    case familyNotFound(String)
    /// A reply lacks an attribute the request needs.
    case missingAttribute(what: String, attribute: UInt16)
    /// A socket call failed.
    case systemCall(String, Errno)
    /// No reply arrived in time, or the reply never ended.
    case noReply(request: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(what, needed, available):
            return "malformed netlink reply: \(what) needs \(needed) bytes but only \(available) remain"
        case let .badLength(what, length, reason):
            return "malformed netlink reply: \(what) has length \(length): \(reason)"
        case let .badValue(what, value, reason):
            return "malformed netlink reply: \(what) is \(value): \(reason)"
        case let .unexpectedMessage(type, request):
            return "unexpected netlink message type \(type) in the reply to \(request)"
        case let .kernel(request, errno, message, offset):
            var s = "\(request) failed: \(errno)"
            if let message, !message.isEmpty { s += " — kernel says: \"\(message)\"" }
            if let offset { s += " (offending attribute at byte \(offset) of the request)" }
            return s
        case let .familyNotFound(name):
            return "the generic netlink family '\(name)' is not registered in this kernel "
                + "(check `genl ctrl list`; '\(name)' needs a newer kernel or its module)"
        case let .missingAttribute(what, attribute):
            return "malformed netlink reply: \(what) lacks attribute \(attribute)"
        case let .systemCall(call, errno):
            return "\(call) failed: \(errno)"
        case let .noReply(request, reason):
            return "no complete reply to \(request): \(reason)"
        }
    }

    /// The kernel's errno, when the kernel refused.
    public var kernelErrno: Errno? {
        if case let .kernel(_, errno, _, _) = self { return errno }
        return nil
    }

    /// The kernel's extended-ACK message, when it gave one.
    public var kernelMessage: String? {
        if case let .kernel(_, _, message, _) = self { return message }
        return nil
    }
}
