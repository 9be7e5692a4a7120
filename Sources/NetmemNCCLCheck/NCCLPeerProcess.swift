import Glibc
import SystemPackage

/// The other process: this executable again, started with the peer arguments and the
/// control channel as descriptor 3.
final class NCCLPeerProcess {
    let pid: pid_t
    let channel: NCCLControlChannel
    private var reaped = false

    init(arguments: [String]) throws(NCCLCheckError) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw .peer("socketpair failed: \(Errno(rawValue: errno))")
        }
        if fds[1] == 3 {  // dup2(3, 3) would keep close-on-exec: move it first
            let moved = fcntl(3, F_DUPFD_CLOEXEC, 4)
            close(3)
            fds[1] = moved
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 3)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let exe = "/proc/self/exe"
        let argv = ([exe] + arguments + ["--control-fd", "3"]).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let r = posix_spawn(&child, exe, &actions, nil, argv, environ)
        close(fds[1])
        guard r == 0 else {
            close(fds[0])
            throw .peer("posix_spawn of \(exe) failed: \(Errno(rawValue: r))")
        }
        pid = child
        channel = NCCLControlChannel(fd: fds[0])
    }

    /// Mirrors `kill(pid, SIGKILL)`.
    func kill() { _ = Glibc.kill(pid, SIGKILL) }

    /// Waits (at most `seconds`) for the exit; returns the wait status, nil if it did not
    /// exit (it is then killed).
    @discardableResult
    func wait(seconds: Double) -> Int32? {
        guard !reaped else { return 0 }
        let deadline = monotonicSeconds() + seconds
        var status: Int32 = 0
        while monotonicSeconds() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                return status
            }
            usleep(10_000)
        }
        kill()
        waitpid(pid, &status, 0)
        reaped = true
        return nil
    }

    deinit {
        if !reaped {
            kill()
            var s: Int32 = 0
            waitpid(pid, &s, 0)
        }
    }
}
