import Foundation
import TestSupport
import Testing

/// Request bodies that arrive for streams whose instance connection never comes up are buffered, and
/// must be given back to the client's connection window when those streams fail: otherwise every such
/// stream shrinks the window for good, and a connection eventually cannot send any body at all.
@Suite(.timeLimit(.minutes(2))) struct HTTP2FlowControlTests {
    static let scriptDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Node")

    @Test func bodiesOfStreamsWhoseInstanceNeverAnswersGiveTheConnectionWindowBack() async throws {
        let store = try ManualCertificateStore(names: ["window.test"])
        defer { store.remove() }
        let stuckPort = try FreePort.find(host: "127.0.0.5")
        let stuck = try BackgroundProcess("python3", [Self.scriptDirectory.appendingPathComponent("stuck-listener.py").path, "127.0.0.5", String(stuckPort)])
        defer { stuck.stop(grace: 1) }
        let readyBy = Date().addingTimeInterval(10)
        while !stuck.log.contains("ready") && Date() < readyBy { try await Task.sleep(for: .milliseconds(50)) }
        #expect(stuck.log.contains("ready"), "\(stuck.log)")

        let gateway = try await GatewayUnderTest { http, https, admin, token in
            """
            \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
            certificates:
              directory: \(store.directory)
            timeouts:
              drain: 1s
              upstreamConnect: 1s
            services:
              - name: stuck
                ports:
                  - { port: \(stuckPort), http: true }
                instances: [127.0.0.5]
            domains:
              - { name: window.test, service: stuck, port: \(stuckPort), ssl: manual }
            """
        }
        try await gateway.whileRunning {
            // 12 streams of 60,000 bytes: 720,000 of the 1 MiB connection window, all sent while the
            // instance connections hang, so the gateway holds them until the connects time out.
            let output = try Shell.run("node", [
                Self.scriptDirectory.appendingPathComponent("h2-window-client.js").path,
                String(gateway.httpsPort), "window.test", store.caPath, "12", "60000",
            ]).output
            let result = try Curl.json(output)
            let statuses = try #require(result["statuses"] as? [Int], "\(output)")
            #expect(statuses.count == 12, "\(output)")
            #expect(statuses.allSatisfy { $0 == 502 || $0 == 504 }, "every stream failed: \(output)")
            // nghttp2 sends a connection WINDOW_UPDATE once half the window is consumed, so up to half may
            // still be outstanding when all is given back; without the give-back 720,000 would be.
            let window = try #require(result["remoteWindowSize"] as? Int, "\(output)")
            #expect(window > (1 << 20) / 2, "the failed streams' bodies went back to the window: \(output)")
        }
    }
}
