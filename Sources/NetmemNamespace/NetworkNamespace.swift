import CNetmemLinux
import Glibc
import SystemPackage

/// Runs code with the calling thread inside another network namespace, for setting up
/// sockets, programs and interface lookups there (a socket keeps the namespace it was
/// created in). Only the calling thread moves, and it moves back before returning; the
/// body must not suspend (it is synchronous) so it cannot hop threads.
///
/// The one namespace switcher of the package: the netlink clients (NetmemKernel), the
/// AF_XDP lab and the benchmarks all use it.
public enum NetworkNamespace {
    /// Where `ip netns add NAME` puts a namespace's file.
    public static func path(named name: String) -> String { "/var/run/netns/\(name)" }

    /// Enters the namespace named `name` (as `ip netns add` creates it, under
    /// /var/run/netns), runs `body`, and returns to the thread's previous namespace.
    /// Mirrors `setns(2)` with `CLONE_NEWNET`. Throws `NetworkNamespaceError` when the
    /// switch fails, or what `body` throws.
    public static func run<R: ~Copyable, E: Error>(in name: String, _ body: () throws(E) -> R) throws -> R {
        try run(path: path(named: name), body)
    }

    /// Same with a path to a namespace file (e.g. /proc/PID/ns/net).
    public static func run<R: ~Copyable, E: Error>(path: String, _ body: () throws(E) -> R) throws -> R {
        let saved = try switchTo(path)
        defer { switchBack(to: saved) }
        return try body()
    }

    /// `run(path:_:)` for a body that cannot fail: the only error is the switch's.
    public static func run<R: ~Copyable>(path: String, returning body: () -> R) throws(NetworkNamespaceError) -> R {
        let saved = try switchTo(path)
        defer { switchBack(to: saved) }
        return body()
    }

    /// Moves the calling thread into the namespace for good (a dedicated sender thread).
    public static func enter(_ name: String) throws(NetworkNamespaceError) {
        let target = try open(path(named: name))
        defer { close(target) }
        try setns(target, path(named: name))
    }

    // MARK: The switch

    /// Moves the thread into `path`'s namespace; returns a descriptor of the one it was in.
    private static func switchTo(_ path: String) throws(NetworkNamespaceError) -> Int32 {
        let saved = try open("/proc/thread-self/ns/net")
        do throws(NetworkNamespaceError) {
            let target = try open(path)
            defer { close(target) }
            try setns(target, path)
        } catch {
            close(saved)
            throw error
        }
        return saved
    }

    /// Returns the thread to the namespace `saved` names and closes it. A thread that
    /// cannot go back would run the rest of its life in the wrong namespace: that traps.
    private static func switchBack(to saved: Int32) {
        let back = cnm_setns_net(saved)
        close(saved)
        precondition(back == 0, "could not return to the thread's network namespace: \(Errno(rawValue: -back))")
    }

    /// Mirrors `open(2)` of a namespace file, read-only, close-on-exec.
    private static func open(_ path: String) throws(NetworkNamespaceError) -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = Errno(rawValue: errno)
            if e == .noSuchFileOrDirectory, path.hasPrefix("/var/run/netns/") {
                throw .noSuchNamespace(String(path.dropFirst("/var/run/netns/".count)))
            }
            throw .systemCall("open(\(path))", e)
        }
        return fd
    }

    /// Mirrors `setns(fd, CLONE_NEWNET)`.
    private static func setns(_ fd: Int32, _ path: String) throws(NetworkNamespaceError) {
        let r = cnm_setns_net(fd)
        guard r == 0 else { throw .systemCall("setns(\(path), CLONE_NEWNET)", Errno(rawValue: -r)) }
    }
}
