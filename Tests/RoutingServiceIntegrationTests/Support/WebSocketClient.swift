import Foundation

/// A WebSocket client over `RawSocket`, just enough for the echo instances: upgrade, masked text frames.
final class WebSocketClient {
    let socket: RawSocket

    init(port: Int, host: String) throws {
        socket = try RawSocket(host: "127.0.0.1", port: port, receiveTimeout: 3)
        try socket.send(
            "GET /ws HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        let head = socket.receiveHead()
        guard head.hasPrefix("HTTP/1.1 101") else { throw TestFailure("no 101 for \(host): \(head)") }
    }

    /// Sends a text frame and returns the echoed text, or nil when the connection is closed or silent.
    func echo(_ text: String) -> String? {
        let payload = Array(text.utf8)
        let mask: [UInt8] = [1, 2, 3, 4]
        var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        guard (try? socket.send(frame)) != nil else { return nil }
        let result = socket.receive { $0.count >= 2 && $0.count >= 2 + Int($0[1] & 0x7f) }
        guard result.bytes.count >= 2 else { return nil }
        return String(decoding: result.bytes.dropFirst(2), as: UTF8.self)
    }

    /// Waits up to `timeout` seconds for the peer to close.
    func waitForClose(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let result = socket.receive()
            if result.closed { return true }
        }
        return false
    }
}
