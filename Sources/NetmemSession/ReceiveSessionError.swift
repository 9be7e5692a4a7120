import Netmem
import NetmemDevice
import NetmemFraming
import NetmemURing
import SystemPackage

/// Why a receive session could not be made or ended with an error. Every case says what
/// was wrong and, where there is one, what to do.
public enum ReceiveSessionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A configuration value the session cannot run with.
    case invalidConfiguration(String)
    /// The memory could not be set up (provider, pool).
    case memory(NetmemError)
    /// The region or its binding could not be set up.
    case region(DeviceMemoryError)
    /// The io_uring receive path failed (setup or the ring itself).
    case receiver(URingError)
    /// The framing configuration cannot work.
    case framing(FrameError)
    /// GPU memory could not be set up.
    case gpu(String)
    /// Listening on the address failed.
    case listen(SocketAddress, Errno)
    /// The listener failed while the session ran; no more connections can come.
    case listenerFailed(SocketAddress?, Errno)
    /// `start` or `run` on a session that already ran.
    case alreadyStarted

    public var description: String {
        switch self {
        case let .invalidConfiguration(why): return "invalid receive session configuration: \(why)"
        case let .memory(e): return "receive memory: \(e)"
        case let .region(e): return "receive region: \(e)"
        case let .receiver(e): return "io_uring receiver: \(e)"
        case let .framing(e): return e.description
        case let .gpu(why): return "GPU memory: \(why)"
        case let .listen(address, e):
            if e == .addressInUse {
                return "cannot listen on \(address): the address is already in use (is another receiver running? pick another port)"
            }
            return "cannot listen on \(address): \(e) (errno \(e.rawValue))"
        case let .listenerFailed(address, e):
            return "the listener\(address.map { " on \($0)" } ?? "") failed: \(e) (errno \(e.rawValue)); no more connections are accepted"
        case .alreadyStarted: return "the session was already started; a session runs once (make a new one)"
        }
    }
}
