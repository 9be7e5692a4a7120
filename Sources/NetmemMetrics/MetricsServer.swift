import NIOCore
import NIOHTTP1
import NIOPosix
import NetmemURing

/// Why the metrics server could not start.
public enum MetricsServerError: Error, Sendable, CustomStringConvertible {
    case bind(NetmemURing.SocketAddress, String)
    public var description: String {
        switch self {
        case let .bind(address, why): return "cannot serve metrics on \(address): \(why)"
        }
    }
}

/// Serves `GET /metrics` in the Prometheus text format over HTTP/1.1, with swift-nio:
/// any number of clients at once, each bounded by an idle timeout, on its own event
/// loop, so no client can delay a scrape or the shutdown of what it measures.
public final class MetricsServer: Sendable {
    /// The address it listens on (with the port the kernel picked for port 0).
    public let address: NetmemURing.SocketAddress
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// Starts serving `render()` (called once per scrape, on the server's thread).
    ///
    /// - Parameters:
    ///   - address: Where to listen.
    ///   - idleTimeout: A connection that sends nothing for this long is closed.
    ///   - render: The body of a `/metrics` response.
    /// - Throws: `MetricsServerError.bind` when the address cannot be bound.
    public init(address: NetmemURing.SocketAddress, idleTimeout: Duration = .seconds(5),
                render: @escaping @Sendable () -> [UInt8]) throws(MetricsServerError) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let idle = TimeAmount.nanoseconds(Int64(idleTimeout.components.seconds) * 1_000_000_000
            + Int64(idleTimeout.components.attoseconds / 1_000_000_000))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(render: render))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
        do {
            channel = try bootstrap.bind(host: address.host, port: Int(address.port)).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw .bind(address, "\(error)")
        }
        self.group = group
        let port = channel.localAddress?.port ?? Int(address.port)
        self.address = address.with(port: UInt16(port))
    }

    /// Stops listening and closes every client connection. Returns promptly whatever
    /// clients do.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Answers each request on one connection: `GET /metrics` gets the metrics, anything
/// else a 404 or 405; idle connections are closed.
final class MetricsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () -> [UInt8]
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> [UInt8]) { self.render = render }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h):
            head = h
        case .body:
            break
        case .end:
            guard let h = head else { return }
            head = nil
            respond(to: h, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let status: HTTPResponseStatus
        let body: [UInt8]
        var type = "text/plain; charset=utf-8"
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        if request.method != .GET {
            status = .methodNotAllowed
            body = Array("only GET /metrics is served\n".utf8)
        } else if path == "/metrics" {
            status = .ok
            body = render()
            type = "text/plain; version=0.0.4; charset=utf-8"
        } else {
            status = .notFound
            body = Array("only GET /metrics is served\n".utf8)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.count)")
        let keepAlive = request.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
