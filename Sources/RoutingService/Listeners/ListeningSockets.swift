#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// One listening socket per event loop, all on the same address (`SO_REUSEPORT`): the kernel spreads
/// new connections over them, and each connection is accepted, set up and served on the loop whose
/// socket took it. With one shared socket NIO accepts on one loop and hands every connection to
/// another one through futures (register, initialise, hop back), which a handshake-per-request load
/// pays for on every connection.
public struct ListeningSockets: Sendable {
    public let channels: [any Channel]

    /// The address every socket is bound to (the same for all; the actual port when 0 was asked for).
    public var localAddress: SocketAddress? { channels.first?.localAddress }

    /// Binds `host:port` once per loop of `group`. `configure` adds the listener's own options and child
    /// initializer to each socket's bootstrap.
    ///
    /// `SO_REUSEPORT` would also let a second process of the same user share a port silently (a second
    /// gateway started by mistake would take half the connections). So the address is first bound
    /// alone, without it, which fails as usual ("address already in use") when anything listens there;
    /// that probe also fixes the port when 0 was asked for.
    public static func bind(
        group: any EventLoopGroup,
        host: String,
        port: Int,
        configure: (ServerBootstrap) -> ServerBootstrap
    ) async throws -> ListeningSockets {
        let loops = Array(group.makeIterator())
        let probe = try await ServerBootstrap(group: loops[0])
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port)
            .get()
        let boundPort = probe.localAddress?.port ?? port
        try await probe.close()

        var channels: [any Channel] = []
        do {
            for loop in loops {
                let bootstrap = ServerBootstrap(group: loop)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
                channels.append(try await configure(bootstrap).bind(host: host, port: boundPort).get())
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        return ListeningSockets(channels: channels)
    }

    /// Stops accepting on every socket (connections already accepted go on).
    public func close() async throws {
        for channel in channels { try await channel.close() }
    }

    public func close(promise: EventLoopPromise<Void>?) {
        guard let first = channels.first else {
            promise?.succeed(())
            return
        }
        let closed = channels.map { $0.close() }
        EventLoopFuture.andAllSucceed(closed, on: first.eventLoop).cascade(to: promise)
    }
}
