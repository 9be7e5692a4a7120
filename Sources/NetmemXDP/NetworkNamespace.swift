import CNetmemLinux
import Glibc
import SystemPackage

/// Runs code with the calling thread inside another network namespace, for setting up
/// sockets, programs and interface lookups there (a socket keeps the namespace it was
/// created in). Only the calling thread moves, and it moves back before returning; the
/// body must not suspend (it is synchronous) so it cannot hop threads.
public enum NetworkNamespace {
    /// Enters the namespace named `name` (as `ip netns add` creates it, under
    /// /var/run/netns), runs `body`, and returns to the thread's previous namespace.
    /// Mirrors `setns(2)` with `CLONE_NEWNET`.
    public static func run<R: ~Copyable, E: Error>(in name: String, _ body: () throws(E) -> R) throws -> R {
        try run(path: "/var/run/netns/\(name)", body)
    }

    /// Same with a path to a namespace file (e.g. /proc/PID/ns/net).
    public static func run<R: ~Copyable, E: Error>(path: String, _ body: () throws(E) -> R) throws -> R {
        let saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard saved >= 0 else { throw XDPError.systemCall("open(/proc/thread-self/ns/net)", Errno(rawValue: errno)) }
        defer { close(saved) }
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw XDPError.systemCall("open(\(path))", Errno(rawValue: errno)) }
        defer { close(target) }
        let r = cnm_setns_net(target)
        guard r == 0 else { throw XDPError.from(r, "setns(\(path), CLONE_NEWNET)") }
        defer {
            let back = cnm_setns_net(saved)
            precondition(back == 0, "could not return to the thread's network namespace (errno \(-back))")
        }
        return try body()
    }

    /// Moves the calling thread into the namespace for good (a dedicated sender thread).
    public static func enter(_ name: String) throws(XDPError) {
        let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw .systemCall("open(/var/run/netns/\(name))", Errno(rawValue: errno)) }
        defer { close(target) }
        let r = cnm_setns_net(target)
        guard r == 0 else { throw XDPError.from(r, "setns(\(name), CLONE_NEWNET)") }
    }
}
