import CParley
import Foundation

/// Process-wide facts and settings of libparley.
public enum ParleyLibrary {
    /// The linked library's version as `0xMMmmpp`.
    public static var version: UInt32 { parley_version() }
    /// The linked library's version, e.g. "0.2.0".
    public static var versionString: String { String(cString: parley_version_string()) }
    /// The version of the header this binding was compiled against.
    public static var headerVersionString: String { PARLEY_VERSION_STRING }
    /// The C API version this binding is written for (its calls need at least this library).
    public static let bindingVersionString = "0.2.0"

    /// Log levels (`parley_log_level`).
    public enum LogLevel: Int32, Sendable, Comparable {
        case off = 0, error = 1, warn = 2, info = 3, debug = 4, trace = 5
        public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
    }

    /// The most verbose level delivered to the log sink (default `.warn`).
    public static func setLogLevel(_ level: LogLevel) {
        _ = parley_log_set_level(level.rawValue)
    }

    /// Replaces the process-wide log sink; nil restores the default (stderr). The handler is
    /// called on whichever thread logs, possibly concurrently: it must be thread-safe, must
    /// not block for long and must not call parley.
    public static func setLogHandler(_ handler: (@Sendable (LogLevel, String) -> Void)?) {
        logSink.set(handler)
        if handler == nil {
            _ = parley_log_set_callback(nil, nil)
        } else {
            _ = parley_log_set_callback({ _, level, message in
                guard let message else { return }
                logSink.emit(LogLevel(rawValue: level) ?? .error, String(cString: message))
            }, nil)
        }
    }
}

/// Holds the Swift log handler; the C sink reads it under a lock.
private final class LogSink: @unchecked Sendable {
    private let lock = NSLock()
    private var handler: (@Sendable (ParleyLibrary.LogLevel, String) -> Void)?

    func set(_ h: (@Sendable (ParleyLibrary.LogLevel, String) -> Void)?) {
        lock.lock()
        handler = h
        lock.unlock()
    }

    func emit(_ level: ParleyLibrary.LogLevel, _ message: String) {
        lock.lock()
        let h = handler
        lock.unlock()
        h?(level, message)
    }
}

private let logSink = LogSink()
