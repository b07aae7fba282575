import Foundation

public struct ShellError: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let output: String
    public var description: String { "`\(command)` exited \(status): \(output)" }
}

/// Runs short-lived tools (openssl, curl, …) to completion and returns what they printed.
public enum Shell {
    @discardableResult
    public static func run(
        _ tool: String,
        _ arguments: [String],
        input: Data? = nil,
        allowFailure: Bool = false
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let inputPipe = Pipe()
        process.standardInput = inputPipe
        try process.run()
        if let input { inputPipe.fileHandleForWriting.write(input) }
        try inputPipe.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0 && !allowFailure {
            throw ShellError(command: ([tool] + arguments).joined(separator: " "), status: process.terminationStatus, output: text)
        }
        return (process.terminationStatus, text)
    }
}

/// A long-running process started by a test and stopped by PID when the test is done.
public final class BackgroundProcess: @unchecked Sendable {
    public let process: Process
    public let logPath: String
    /// The log file is this object's own (no path was given): it goes with the process.
    private let ownsLog: Bool

    public init(_ tool: String, _ arguments: [String], environment: [String: String] = [:], logPath: String? = nil) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: tool.hasPrefix("/") ? tool : "/usr/bin/env")
        process.arguments = tool.hasPrefix("/") ? arguments : [tool] + arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        self.ownsLog = logPath == nil
        self.logPath = logPath ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("edge-router-proc-\(UUID().uuidString).log").path
        _ = FileManager.default.createFile(atPath: self.logPath, contents: nil)
        let handle = FileHandle(forWritingAtPath: self.logPath)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds.
    public func stop(grace: Double = 5) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop(grace: 1)
        if ownsLog { try? FileManager.default.removeItem(atPath: logPath) }
    }
}
