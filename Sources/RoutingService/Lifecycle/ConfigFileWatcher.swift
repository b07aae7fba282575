#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Watches the configuration file by polling `stat` (inode, size, modification time): portable, and an
/// editor that saves by rename (new inode) is seen as surely as one that writes in place. A change is
/// reported once the file has stayed the same for `settle`, so a burst of writes makes one reload.
public struct ConfigFileWatcher: Sendable {
    public struct Stamp: Sendable, Equatable {
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    public let path: String
    public let interval: Duration
    public let settle: Duration

    public init(path: String, interval: Duration = .milliseconds(250), settle: Duration = .milliseconds(200)) {
        self.path = path
        self.interval = interval
        self.settle = settle
    }

    /// nil when the file cannot be read (being replaced, or gone): not a change yet.
    public static func stamp(of path: String) -> Stamp? {
        var info = Glibc.stat()
        guard stat(path, &info) == 0 else { return nil }
        #if canImport(Darwin)
        let modified = info.st_mtimespec
        #else
        let modified = info.st_mtim
        #endif
        return Stamp(
            inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: Int(modified.tv_sec), modifiedNanoseconds: Int(modified.tv_nsec)
        )
    }

    /// Calls `changed` after each settled change, until the task is cancelled.
    public func run(_ changed: @Sendable () async -> Void) async {
        var last = Self.stamp(of: path)
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            guard var seen = Self.stamp(of: path), seen != last else { continue }
            // Wait for the writes to stop.
            while !Task.isCancelled {
                do { try await Task.sleep(for: settle) } catch { return }
                guard let again = Self.stamp(of: path) else { continue }
                if again == seen { break }
                seen = again
            }
            last = seen
            await changed()
        }
    }
}
