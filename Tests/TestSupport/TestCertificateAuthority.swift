import Foundation

/// A throwaway CA made with the `openssl` CLI in a temporary folder, issuing ECDSA P-256 leaves.
/// Tests make their certificates with it; nothing with a private key is committed.
public final class TestCertificateAuthority: Sendable {
    public let directory: URL
    public let caCertificatePath: String
    private let caKeyPath: String

    public init(commonName: String = "edge-router test CA") throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("edge-router-ca-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        caKeyPath = directory.appendingPathComponent("ca.key").path
        caCertificatePath = directory.appendingPathComponent("ca.pem").path
        try Shell.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", caKeyPath, "-out", caCertificatePath, "-days", "30", "-subj", "/CN=\(commonName)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    public struct Leaf: Sendable {
        public let certificatePath: String
        public let keyPath: String
        /// The leaf followed by the CA: what a server sends.
        public let chainPath: String
    }

    /// Issues a leaf for `names` (first one is the CN). `days` may be negative to make an expired one.
    public func issue(_ names: [String], days: Int = 30, file: String? = nil) throws -> Leaf {
        let base = directory.appendingPathComponent(file ?? names[0].replacingOccurrences(of: "*", with: "_wildcard")).path
        let san = names.map { name -> String in
            name.allSatisfy({ $0.isNumber || $0 == "." }) ? "IP:\(name)" : "DNS:\(name)"
        }.joined(separator: ",")
        let extFile = base + ".ext"
        try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: extFile, atomically: true, encoding: .utf8)
        try Shell.run("openssl", [
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=\(names[0])",
        ])
        var signArguments = [
            "x509", "-req", "-in", base + ".csr", "-CA", caCertificatePath, "-CAkey", caKeyPath,
            // A random serial: a shared `ca.srl` (`-CAcreateserial`) is read and rewritten by every
            // signing, and two tests issuing at once read it half-written ("Unable to load number").
            "-set_serial", "0x" + (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined(),
            "-out", base + ".pem", "-extfile", extFile,
        ]
        if days >= 0 {
            signArguments += ["-days", String(days)]
        } else {
            // openssl x509 cannot sign in the past directly: a not-after before now via -not_after is 3.4+,
            // so make a certificate valid for one second and wait it out.
            signArguments += ["-days", "0"]
        }
        try Shell.run("openssl", signArguments)
        let chain = try String(contentsOfFile: base + ".pem", encoding: .utf8)
            + String(contentsOfFile: caCertificatePath, encoding: .utf8)
        try chain.write(toFile: base + ".chain.pem", atomically: true, encoding: .utf8)
        return Leaf(certificatePath: base + ".pem", keyPath: base + ".key", chainPath: base + ".chain.pem")
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }
}
