import Foundation
import NIOCore
import NIOPosix
import TestSupport

/// Pebble (the Debian package) and its mock DNS, started on loopback for one test and stopped by PID.
/// A throwaway CA signs Pebble's own HTTPS certificate (`listenerCAPath`, the `acme.caBundle`); the
/// CA that signs issued certificates is fetched from the management port (`issuingRootPath`).
final class PebbleServer: @unchecked Sendable {
    let directory: URL
    let listenerCAPath: String
    let issuingRootPath: String
    let acmePort: Int
    let managementPort: Int
    private let dns: BackgroundProcess
    private let pebble: BackgroundProcess

    var directoryURL: String { "https://127.0.0.1:\(acmePort)/dir" }
    var log: String { pebble.log }

    /// `httpPort` / `tlsPort`: where Pebble validates HTTP-01 and TLS-ALPN-01 (the gateway's listeners).
    init(
        httpPort: Int,
        tlsPort: Int,
        validityPeriod: Int = 157_766_400,
        nonceRejectPercent: Int = 0
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pebble-\(UUID().uuidString)")
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        listenerCAPath = path("listener-ca.pem")
        issuingRootPath = path("issuing-root.pem")
        try Shell.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", path("ca.key"), "-out", listenerCAPath, "-days", "2", "-subj", "/CN=pebble listener CA",
        ])
        try Shell.run("openssl", [
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", path("localhost.key"), "-out", path("localhost.csr"), "-subj", "/CN=localhost",
        ])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: path("ext.cnf"), atomically: true, encoding: .utf8)
        try Shell.run("openssl", [
            "x509", "-req", "-in", path("localhost.csr"), "-CA", listenerCAPath, "-CAkey", path("ca.key"),
            "-CAcreateserial", "-out", path("localhost.pem"), "-days", "2", "-extfile", path("ext.cnf"),
        ])
        let ports = try freePorts(4)
        acmePort = ports[0]
        managementPort = ports[1]
        let dnsPort = ports[2]
        let config = """
            { "pebble": {
              "listenAddress": "127.0.0.1:\(acmePort)", "managementListenAddress": "127.0.0.1:\(managementPort)",
              "certificate": "\(path("localhost.pem"))", "privateKey": "\(path("localhost.key"))",
              "httpPort": \(httpPort), "tlsPort": \(tlsPort),
              "ocspResponderURL": "", "externalAccountBindingRequired": false,
              "certificateValidityPeriod": \(validityPeriod)
            } }
            """
        try config.write(toFile: path("pebble.json"), atomically: true, encoding: .utf8)
        dns = try BackgroundProcess("/usr/bin/pebble-challtestsrv", [
            "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", "127.0.0.1:\(dnsPort)",
            "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:\(ports[3])",
        ])
        pebble = try BackgroundProcess(
            "/usr/bin/pebble",
            ["-config", path("pebble.json"), "-dnsserver", "127.0.0.1:\(dnsPort)", "-strict=false"],
            environment: [
                "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "\(nonceRejectPercent)", "PEBBLE_AUTHZREUSE": "0",
            ]
        )
        let deadline = Date().addingTimeInterval(15)
        while true {
            let probe = try Shell.run(
                "curl", ["-sf", "--cacert", listenerCAPath, directoryURL], allowFailure: true
            )
            if probe.status == 0 { break }
            guard Date() < deadline else {
                stop()
                throw PebbleStartError(log: pebble.log)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        try Shell.run("curl", [
            "-sf", "--cacert", listenerCAPath, "-o", issuingRootPath, "https://127.0.0.1:\(managementPort)/roots/0",
        ])
    }

    func stop() {
        pebble.stop(grace: 2)
        dns.stop(grace: 2)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct PebbleStartError: Error, CustomStringConvertible {
    let log: String
    var description: String { "Pebble did not answer within 15 s: \(log)" }
}

/// Distinct ports free on 127.0.0.1 right now, never handed out before in this process.
func freePorts(_ count: Int) throws -> [Int] {
    try FreePort.find(count, host: "127.0.0.1")
}

/// What `openssl s_client` got for `serverName` on `port`, verified against `rootPath`.
struct ServedCertificate {
    var verified: Bool
    var serial: String?
    var refused: Bool
    var output: String

    static func fetch(port: Int, serverName: String, rootPath: String, alpn: String? = nil) throws -> ServedCertificate {
        var arguments = [
            "s_client", "-connect", "127.0.0.1:\(port)", "-servername", serverName, "-CAfile", rootPath,
            "-verify_return_error", "-verify_hostname", serverName,
        ]
        if let alpn { arguments += ["-alpn", alpn] }
        let client = try Shell.run("openssl", arguments, input: Data(), allowFailure: true)
        let certificate = client.output.components(separatedBy: "-----BEGIN CERTIFICATE-----").dropFirst().first
            .map { "-----BEGIN CERTIFICATE-----" + $0.components(separatedBy: "-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n" }
        var serial: String?
        if let certificate {
            let parsed = try Shell.run("openssl", ["x509", "-noout", "-serial"], input: Data(certificate.utf8), allowFailure: true)
            serial = parsed.output.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        return ServedCertificate(
            verified: client.output.contains("Verify return code: 0 (ok)") && client.status == 0,
            serial: serial,
            refused: client.output.contains("unrecognized name"),
            output: client.output
        )
    }
}
