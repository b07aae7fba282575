import Foundation

/// The bearer token of the admin API, read from `admin.tokenFile` (surrounding whitespace trimmed).
/// Re-read when the file changes, so a token can be rotated without a restart.
public final class AdminToken: @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    private var token: [UInt8]
    private var stamp: ConfigFileWatcher.Stamp?

    /// Throws when the file cannot be read or holds no token: the API must not start then.
    public init(path: String) throws {
        self.path = path
        self.token = try Self.read(path)
        self.stamp = ConfigFileWatcher.stamp(of: path)
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AdminTokenError(description: "cannot read the admin token file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw AdminTokenError(description: "the admin token file \(path) is empty") }
        return Array(text.utf8)
    }

    private var current: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        let now = ConfigFileWatcher.stamp(of: path)
        if now != stamp, let now, let fresh = try? Self.read(path) {
            token = fresh
            stamp = now
        }
        return token
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    public func accepts(authorization: String?) -> Bool {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return false }
        let presented = Array(authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces).utf8)
        return Self.constantTimeEqual(presented, current)
    }

    /// Compares every byte whatever the first difference, so the time taken says nothing about the token.
    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
        let length = max(lhs.count, rhs.count)
        for index in 0..<length {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= left ^ right
        }
        return difference == 0 && lhs.count == rhs.count
    }
}

public struct AdminTokenError: Error, CustomStringConvertible {
    public let description: String
}
