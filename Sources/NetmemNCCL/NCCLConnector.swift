import Glibc
import Synchronization
import SystemPackage

/// A `connect` in progress: the comm's sockets, each connecting without blocking and then
/// sending its 48-byte hello (comm nonce, listener token, socket index). NCCL calls
/// `connect` again with the same handle until a comm comes back; the handle's connect
/// state names this object (looked up by id, never dereferenced from the handle).
final class NCCLConnector: @unchecked Sendable {
    /// Connects in progress, by id.
    static let pending = Mutex<[UInt64: NCCLConnector]>([:])
    private static let nextID = Atomic<UInt64>(1)

    enum Phase { case connecting, hello(sent: Int), ready }

    let id: UInt64
    let context: NCCLContext
    let handle: NCCLConnectionHandle
    let nonce: UInt64
    private var sockets: [(fd: FileDescriptor, phase: Phase)] = []
    private let deadline: ContinuousClock.Instant

    private init(context: NCCLContext, handle: NCCLConnectionHandle) throws(NCCLError) {
        id = Self.nextID.add(1, ordering: .relaxed).newValue
        self.context = context
        self.handle = handle
        nonce = UInt64.random(in: 1...UInt64.max)
        deadline = .now + .seconds(context.configuration.peerTimeoutSeconds)
        do throws(Errno) {
            for _ in 0..<handle.sockets {
                let fd = try NCCLSocket.stream(family: handle.address.family)
                sockets.append((fd, .connecting))
                if try NCCLSocket.startConnect(fd, to: handle.address) { sockets[sockets.count - 1].phase = .hello(sent: 0) }
            }
        } catch {
            closeSockets()
            throw connectError(error)
        }
    }

    /// Mirrors `connect`: advances the connect named by `handleBytes` (starting it on the
    /// first call); returns the send comm once every socket is connected and has sent its
    /// hello, nil while that is still under way.
    static func connect(context: NCCLContext, handleBytes: UnsafeMutableRawPointer) throws(NCCLError) -> NCCLSendComm? {
        let handle = try NCCLConnectionHandle(decoding: UnsafeRawPointer(handleBytes))
        let existing = NCCLConnectionHandle.pendingConnect(in: handleBytes).flatMap { id in
            pending.withLockChecked { $0[id] }
        }
        let connector: NCCLConnector
        if let existing, existing.handle == handle, existing.context === context {
            connector = existing
        } else {
            connector = try NCCLConnector(context: context, handle: handle)
            pending.withLockChecked { $0[connector.id] = connector }
            context.pendingConnects.withLockChecked { _ = $0.insert(connector.id) }
            NCCLConnectionHandle.setPendingConnect(connector.id, in: handleBytes)
        }
        do throws(NCCLError) {
            guard try connector.advance() else { return nil }
            connector.forget()
            NCCLConnectionHandle.setPendingConnect(nil, in: handleBytes)
            let fds = connector.sockets.map(\.fd)
            connector.sockets = []
            try prepareDataSockets(fds, context.configuration)
            return try NCCLSendComm(context: context, label: "send comm to \(handle.address)", sockets: fds, crc: handle.crc)
        } catch {
            connector.abandon()
            NCCLConnectionHandle.setPendingConnect(nil, in: handleBytes)
            throw error
        }
    }

    /// Makes connected sockets blocking (the data paths wait in io_uring) and sets their
    /// options; closes them all on failure.
    static func prepareDataSockets(_ fds: [FileDescriptor], _ config: NCCLConfiguration) throws(NCCLError) {
        do throws(Errno) {
            for fd in fds {
                try NCCLSocket.setBlocking(fd)
                try NCCLSocket.configureData(fd, peerTimeoutSeconds: config.peerTimeoutSeconds, buffer: config.socketBuffer)
            }
        } catch {
            for fd in fds { _ = try? fd.close() }
            throw NCCLError.system("setting up a data socket", error)
        }
    }

    /// One step for every socket; true when all are ready.
    private func advance() throws(NCCLError) -> Bool {
        do throws(Errno) {
            for i in sockets.indices {
                switch sockets[i].phase {
                case .connecting:
                    if try NCCLSocket.connectFinished(sockets[i].fd) { sockets[i].phase = .hello(sent: 0) }
                case .hello, .ready:
                    break
                }
                if case let .hello(sent) = sockets[i].phase {
                    var bytes = [UInt8](repeating: 0, count: NCCLWireFrame.size)
                    bytes.withUnsafeMutableBytes {
                        NCCLWireFrame.hello(nonce: nonce, token: handle.token, index: i, count: handle.sockets)
                            .encode(into: $0.baseAddress!)
                    }
                    let fd = sockets[i].fd
                    let n = try bytes.withUnsafeBytes { raw in
                        Result { () throws(Errno) in try NCCLSocket.sendNow(fd, UnsafeRawBufferPointer(rebasing: raw[sent...])) }
                    }.get()
                    sockets[i].phase = sent + n == bytes.count ? .ready : .hello(sent: sent + n)
                }
            }
        } catch {
            throw connectError(error)
        }
        if sockets.allSatisfy({ if case .ready = $0.phase { return true } else { return false } }) { return true }
        if ContinuousClock.now > deadline {
            throw NCCLError(.remote, "connect to \(handle.address) did not finish in \(context.configuration.peerTimeoutSeconds) s")
        }
        return false
    }

    private func connectError(_ e: Errno) -> NCCLError {
        if e == .connectionRefused {
            return NCCLError(.remote, "connect to \(handle.address) refused: nothing listens there (a closed listen comm, or a handle from another run)")
        }
        return NCCLError.system("connect to \(handle.address)", e)
    }

    private func forget() {
        _ = Self.pending.withLockChecked { $0.removeValue(forKey: id) }
        _ = context.pendingConnects.withLockChecked { $0.remove(id) }
    }

    /// Drops the connect: its sockets close.
    func abandon() {
        forget()
        closeSockets()
    }

    private func closeSockets() {
        for s in sockets { _ = try? s.fd.close() }
        sockets = []
    }
}
