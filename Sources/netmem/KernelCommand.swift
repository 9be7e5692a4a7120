import ArgumentParser
import NetmemKernel

/// `netmem kernel devices|queues|pools [--json]`: what the kernel's netdev family says,
/// as tables like `ynl --family netdev --dump ...`.
struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Show what the kernel's netdev netlink family reports (devices, queues, page pools).",
        subcommands: [Devices.self, Queues.self, Pools.self]
    )

    struct Options: ParsableArguments {
        @Flag(help: "Print JSON instead of a table.")
        var json = false

        @Option(help: "Query inside this network namespace (a path such as /var/run/netns/NAME).")
        var netns: String?
    }

    static func ifname(_ ifindex: UInt32?, netns: String?) -> String {
        guard let ifindex else { return "-" }
        // Names are per namespace: look them up where the query ran.
        if let netns { return NetworkInterface.name(ifindex: ifindex, namespacePath: netns) ?? "-" }
        return NetworkInterface.name(ifindex: ifindex) ?? "-"
    }

    static func fail(_ error: NetlinkError) -> ExitCode {
        printKernelError("netmem kernel: \(error)")
        return ExitCode(1)
    }

    struct Devices: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Devices and their XDP / AF_XDP features (dev-get).")
        @OptionGroup var options: Options

        func run() throws {
            let devices: [NetdevDevice]
            do {
                var client = try NetdevClient(namespacePath: options.netns)
                devices = try client.devices()
            } catch { throw KernelCommand.fail(error) }
            if options.json {
                print(ReportJSON.array(devices.map { d in
                    .object([
                        ("ifindex", .int(Int(d.ifindex))),
                        ("name", .string(KernelCommand.ifname(d.ifindex, netns: options.netns))),
                        ("xdp-features", .array(d.xdpFeatures.names.map { .string($0) })),
                        ("xdp-zc-max-segs", d.xdpZeroCopyMaxSegments.map { .int(Int($0)) } ?? .null),
                        ("xdp-rx-metadata-features", .int(Int(d.xdpRxMetadataFeatures))),
                        ("xsk-features", .int(Int(d.xskFeatures))),
                    ])
                }).rendered)
                return
            }
            KernelTable(["ifindex", "name", "xdp-features", "xdp-zc-max-segs", "xsk-features"], devices.map { d in
                [String(d.ifindex), KernelCommand.ifname(d.ifindex, netns: options.netns), d.xdpFeatures.description,
                 d.xdpZeroCopyMaxSegments.map(String.init) ?? "-", String(d.xskFeatures)]
            }).print()
        }
    }

    struct Queues: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "RX/TX queues, their NAPI and memory providers (queue-get).")
        @OptionGroup var options: Options
        @Option(help: "Only this interface (name).")
        var interface: String?

        func run() throws {
            var ifindex: UInt32?
            if let interface {
                guard let i = NetworkInterface.index(name: interface) else {
                    throw ValidationError("no interface named '\(interface)' (see `ip link`)")
                }
                ifindex = i
            }
            let queues: [NetdevQueue]
            do {
                var client = try NetdevClient(namespacePath: options.netns)
                queues = try client.queues(ifindex: ifindex)
            } catch { throw KernelCommand.fail(error) }
            if options.json {
                print(ReportJSON.array(queues.map { q in
                    .object([
                        ("ifindex", .int(Int(q.ifindex))),
                        ("name", .string(KernelCommand.ifname(q.ifindex, netns: options.netns))),
                        ("type", .string(q.type.description)),
                        ("id", .int(Int(q.id))),
                        ("napi-id", q.napiID.map { .int(Int($0)) } ?? .null),
                        ("dmabuf", q.dmabuf.map { .int(Int($0)) } ?? .null),
                        ("io-uring", .bool(q.ioUring)),
                        ("xsk", .bool(q.xsk)),
                    ])
                }).rendered)
                return
            }
            KernelTable(["ifindex", "name", "type", "id", "napi-id", "dmabuf", "io-uring", "xsk"], queues.map { q in
                [String(q.ifindex), KernelCommand.ifname(q.ifindex, netns: options.netns), q.type.description, String(q.id),
                 q.napiID.map(String.init) ?? "-", q.dmabuf.map(String.init) ?? "-",
                 q.ioUring ? "yes" : "-", q.xsk ? "yes" : "-"]
            }).print()
            if queues.isEmpty {
                print("(no queues: the kernel lists queues only of devices that are up)")
            }
        }
    }

    struct Pools: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The kernel's page pools and their statistics (page-pool-get, page-pool-stats-get).")
        @OptionGroup var options: Options

        func run() throws {
            let pools: [NetdevPagePool]
            var stats: [NetdevPagePoolStats] = []
            var statsNote: String?
            do {
                var client = try NetdevClient(namespacePath: options.netns)
                pools = try client.pagePools()
                do { stats = try client.pagePoolStats() } catch {
                    statsNote = "page-pool statistics unavailable: \(error) (they need CONFIG_PAGE_POOL_STATS)"
                }
            } catch { throw KernelCommand.fail(error) }
            let byID = Dictionary(stats.map { ($0.poolID, $0) }, uniquingKeysWith: { a, _ in a })
            if options.json {
                print(ReportJSON.array(pools.map { p in
                    var fields: [(String, ReportJSON)] = [
                        ("id", .int(Int(p.id))),
                        ("ifindex", p.ifindex.map { .int(Int($0)) } ?? .null),
                        ("name", .string(KernelCommand.ifname(p.ifindex, netns: options.netns))),
                        ("napi-id", p.napiID.map { .int(Int($0)) } ?? .null),
                        ("inflight", p.inflight.map { .int(Int($0)) } ?? .null),
                        ("inflight-mem", p.inflightMemory.map { .int(Int($0)) } ?? .null),
                        ("detach-time", p.detachTime.map { .int(Int($0)) } ?? .null),
                        ("dmabuf", p.dmabuf.map { .int(Int($0)) } ?? .null),
                        ("io-uring", .bool(p.ioUring)),
                    ]
                    if let s = byID[p.id] {
                        fields.append(("stats", .object(s.counters.map { ($0.name, .int(Int($0.value))) })))
                    }
                    return .object(fields)
                }).rendered)
                return
            }
            KernelTable(["id", "ifindex", "name", "napi-id", "inflight", "inflight-mem", "dmabuf", "io-uring", "alloc-fast", "recycle-ring"],
                  pools.map { p in
                      let s = byID[p.id]
                      return [String(p.id), p.ifindex.map(String.init) ?? "-", KernelCommand.ifname(p.ifindex, netns: options.netns),
                              p.napiID.map(String.init) ?? "-", p.inflight.map(String.init) ?? "-",
                              p.inflightMemory.map(String.init) ?? "-", p.dmabuf.map(String.init) ?? "-",
                              p.ioUring ? "yes" : "-",
                              s?.counter("alloc-fast").map(String.init) ?? "-", s?.counter("recycle-ring").map(String.init) ?? "-"]
                  }).print()
            if pools.isEmpty { print("(no page pools: only drivers that use the kernel's page_pool create them)") }
            if let statsNote { print(statsNote) }
        }
    }
}

/// A left-aligned text table.
struct KernelTable {
    var header: [String]
    var rows: [[String]]

    init(_ header: [String], _ rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    func print() {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var s = ""
            for (i, cell) in cells.enumerated() {
                s += cell
                if i < cells.count - 1 { s += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            return s
        }
        Swift.print(line(header))
        for row in rows { Swift.print(line(row)) }
    }
}
