import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

enum FreePort {
    /// Every port handed out in this process: the kernel may offer a port again once it is released,
    /// and two ports of one test (a public port and the admin port, say) must never be the same.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A port free on `host` right now (bound to port 0, read back, released) that no earlier call in
    /// this process returned.
    static func find(host: String) throws -> Int {
        for _ in 0..<64 {
            let port = try bindAndRelease(host: host)
            let isNew = handedOut.withLock { $0.insert(port).inserted }
            if isNew { return port }
        }
        throw TestFailure("no port on \(host) that was not handed out already")
    }

    /// `count` distinct free ports on `host`.
    static func find(_ count: Int, host: String) throws -> [Int] {
        try (0..<count).map { _ in try find(host: host) }
    }

    private static func bindAndRelease(host: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in(host: host, port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind on \(host) failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

extension sockaddr_in {
    init(host: String, port: Int) {
        self.init()
        sin_family = sa_family_t(AF_INET)
        sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &sin_addr)
    }
}

/// A blocking TCP client for sending exactly the bytes a test wants (malformed requests, WebSocket
/// frames) and reading what comes back, with a receive timeout so no test can hang.
final class RawSocket {
    private let fd: Int32

    init(host: String, port: Int, receiveTimeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in(host: host, port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            // No close(fd) here: every stored property is set, so throwing runs deinit, which closes it.
            // Closing it twice closed whatever descriptor another test's channel had reused that number
            // for (NIO then died with EBADF in epoll_ctl/getsockname when suites ran in parallel).
            throw TestFailure("connect to \(host):\(port) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: Int(receiveTimeout), tv_usec: Int((receiveTimeout - Double(Int(receiveTimeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    static func canConnect(host: String, port: Int) -> Bool {
        (try? RawSocket(host: host, port: port, receiveTimeout: 1)) != nil
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw TestFailure("send failed: errno \(errno)") }
            offset += written
        }
    }

    /// Reads until the peer closes, `until` matches, or the receive timeout passes.
    /// `closed` tells whether the peer closed the connection.
    func receive(until done: (([UInt8]) -> Bool)? = nil) -> (bytes: [UInt8], closed: Bool) {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (collected, true) }
            if count < 0 { return (collected, errno == ECONNRESET) }
            collected.append(contentsOf: buffer[0..<count])
            if let done, done(collected) { return (collected, false) }
        }
    }

    /// Reads one HTTP response head (up to the blank line) and returns it as text.
    func receiveHead() -> String {
        let result = receive { $0.count >= 4 && $0.suffix(4).elementsEqual([13, 10, 13, 10]) || String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") }
        return String(decoding: result.bytes, as: UTF8.self)
    }

    deinit { close(fd) }
}
