import NIOHTTP1
import Testing
@testable import RoutingService

@Suite struct ForwardingHeadersTests {
    @Test func requestGetsForwardingHeadersAndLosesHopByHopOnes() {
        let incoming = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x", headers: [
            "Host": "app.test:8443", "Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive", "TE": "trailers", "Trailer": "X-T", "Transfer-Encoding": "chunked",
            "Upgrade": "h2c", "X-Forwarded-For": "10.0.0.1", "Forwarded": "for=10.0.0.1", "Via": "1.0 other", "Accept": "*/*",
        ])
        let forwarded = ForwardingHeaders.request(incoming, context: ForwardingContext(clientAddress: "::1", scheme: "https"))
        let headers = forwarded.head.headers
        #expect(!forwarded.isWebSocketUpgrade)
        for name in ["connection", "x-hop", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
            #expect(!headers.contains(name: name), "\(name) kept")
        }
        #expect(headers["transfer-encoding"] == ["chunked"])  // re-chunked by the proxy, once
        #expect(headers["x-forwarded-for"] == ["10.0.0.1, ::1"])
        #expect(headers["x-forwarded-proto"] == ["https"])
        #expect(headers["x-forwarded-host"] == ["app.test:8443"])
        #expect(headers["forwarded"] == ["for=10.0.0.1, for=\"[::1]\";host=\"app.test:8443\";proto=https"])
        #expect(headers["via"] == ["1.0 other, 1.1 edge-router"])
        #expect(headers["accept"] == ["*/*"])
        #expect(forwarded.head.version == .http1_1)
    }

    @Test func plainRequestGetsEachForwardingHeaderOnceAndClientValuesAreReplacedWhateverTheirCase() {
        let plain = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "app.test"])
        let headers = ForwardingHeaders.request(plain, context: ForwardingContext(clientAddress: "10.1.1.1", scheme: "https"))
            .head.headers
        #expect(headers.map(\.name) == ["Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Via"])
        #expect(headers["forwarded"] == ["for=10.1.1.1;host=app.test;proto=https"])

        let spoofing = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: [
            "host": "app.test", "x-forwarded-proto": "http", "X-FORWARDED-HOST": "evil.test", "KEEP-ALIVE": "timeout=1",
        ])
        let replaced = ForwardingHeaders.request(spoofing, context: ForwardingContext(clientAddress: "10.1.1.1", scheme: "https"))
            .head.headers
        #expect(replaced["x-forwarded-proto"] == ["https"])
        #expect(replaced["x-forwarded-host"] == ["app.test"])
        #expect(!replaced.contains(name: "keep-alive"))
    }

    @Test func webSocketUpgradeKeepsUpgradeAndConnection() {
        let incoming = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws", headers: [
            "Host": "a", "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "k",
        ])
        let forwarded = ForwardingHeaders.request(incoming, context: ForwardingContext(clientAddress: "1.2.3.4", scheme: "http"))
        #expect(forwarded.isWebSocketUpgrade)
        #expect(forwarded.head.headers["upgrade"] == ["websocket"])
        #expect(forwarded.head.headers["connection"] == ["Upgrade"])
        #expect(forwarded.head.headers["forwarded"] == ["for=1.2.3.4;host=a;proto=http"])
    }

    @Test func http10ClientWithoutKeepAliveWantsClose() {
        let incoming = HTTPRequestHead(version: .http1_0, method: .GET, uri: "/", headers: ["Host": "a"])
        #expect(ForwardingHeaders.request(incoming, context: ForwardingContext(clientAddress: nil, scheme: "http")).clientWantsClose)
    }

    @Test func responseIsReframedForTheClient() {
        let chunked = HTTPResponseHead(version: .http1_1, status: .ok, headers: [
            "Transfer-Encoding": "chunked", "Connection": "close, X-Hop", "X-Hop": "1", "Content-Type": "text/plain",
        ])
        let forwarded = ForwardingHeaders.response(chunked, requestMethod: .GET, clientVersion: .http1_1, clientWantsClose: false)
        #expect(forwarded.upstreamWantsClose)
        #expect(!forwarded.closeDelimited)
        #expect(forwarded.head.headers["transfer-encoding"] == ["chunked"])
        #expect(!forwarded.head.headers.contains(name: "x-hop"))
        #expect(!forwarded.head.headers.contains(name: "connection"))
        #expect(forwarded.head.headers["via"] == ["1.1 edge-router"])

        let toOldClient = ForwardingHeaders.response(chunked, requestMethod: .GET, clientVersion: .http1_0, clientWantsClose: false)
        #expect(toOldClient.closeDelimited)
        #expect(!toOldClient.head.headers.contains(name: "transfer-encoding"))
        #expect(toOldClient.head.headers["connection"] == ["close"])

        let sized = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "5"])
        let kept = ForwardingHeaders.response(sized, requestMethod: .GET, clientVersion: .http1_1, clientWantsClose: true)
        #expect(kept.head.headers["content-length"] == ["5"])
        #expect(kept.head.headers["connection"] == ["close"])
        #expect(!kept.upstreamWantsClose)

        let head = ForwardingHeaders.response(chunked, requestMethod: .HEAD, clientVersion: .http1_1, clientWantsClose: false)
        #expect(!head.head.headers.contains(name: "transfer-encoding"))
    }
}
