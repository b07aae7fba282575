#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

/// Replaces a file so that, after a crash at any point, the path holds either the old contents or the new
/// ones, never a mix or a truncated file: write a temporary file in the same folder (same file system, so
/// rename is atomic), fsync it, set its permissions, rename it over the target, fsync the folder (so the
/// rename itself survives a power cut).
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, permissions: mode_t = 0o644) throws {
        try write(bytes, to: path, permissions: permissions, crashBeforeRename: false)
    }

    /// Test hook: does everything up to the rename, then stops as a crash would (the temporary file stays
    /// behind) and throws `AtomicFileError.simulatedCrash`.
    public static func _testOnly_writeCrashingBeforeRename(
        _ bytes: [UInt8],
        to path: String,
        permissions: mode_t = 0o644
    ) throws {
        try write(bytes, to: path, permissions: permissions, crashBeforeRename: true)
    }

    /// `path`'s folder, made durable: an entry just created or renamed in it survives a crash.
    public static func syncDirectory(_ directory: String) throws {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw AtomicFileError(operation: "open folder", path: directory) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw AtomicFileError(operation: "fsync folder", path: directory) }
    }

    /// The folder holding `path` (`.` for a bare file name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func write(_ bytes: [UInt8], to path: String, permissions: mode_t, crashBeforeRename: Bool) throws {
        let directory = directory(of: path)
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        // Hidden and unique, so readers listing the folder skip it and concurrent writers do not collide.
        let temporaryPath = "\(directory)/.\(fileName).tmp-\(UInt32.random(in: .min ... .max))"

        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw AtomicFileError(operation: "create", path: temporaryPath) }
        var renamed = false
        defer {
            if !renamed && !crashBeforeRename { unlink(temporaryPath) }
        }
        do {
            defer { close(descriptor) }
            try writeAll(bytes, to: descriptor, path: temporaryPath)
            // Permissions are set before the rename so the final path never exists with looser ones
            // (a key must never be readable by others, not even for an instant).
            guard fchmod(descriptor, permissions) == 0 else {
                throw AtomicFileError(operation: "chmod", path: temporaryPath)
            }
            guard fsync(descriptor) == 0 else { throw AtomicFileError(operation: "fsync", path: temporaryPath) }
        }
        if crashBeforeRename { throw AtomicFileError.simulatedCrash(path: path) }
        guard rename(temporaryPath, path) == 0 else {
            throw AtomicFileError(operation: "rename \(temporaryPath) to", path: path)
        }
        renamed = true
        try syncDirectory(directory)
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFileError(operation: "write", path: path)
                }
                offset += written
            }
        }
    }
}

public struct AtomicFileError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let path: String
    /// The `errno` of the failed call; 0 for a simulated crash.
    public let errorNumber: Int32

    init(operation: String, path: String, errorNumber: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.errorNumber = errorNumber
    }

    static func simulatedCrash(path: String) -> AtomicFileError {
        AtomicFileError(operation: "simulated crash before renaming into", path: path, errorNumber: 0)
    }

    public var isSimulatedCrash: Bool { errorNumber == 0 }

    public var description: String {
        guard errorNumber != 0 else { return "\(operation) \(path)" }
        return "cannot \(operation) \(path): \(String(cString: strerror(errorNumber)))"
    }
}
