import Foundation
import XCTest

/// A parley-relay child process on loopback: `--listen 127.0.0.1:0` (or `listen`), its identity seed in a
/// scratch directory. The constructor reads the two lines the relay prints at start-up
/// (`fingerprint <hex>`, `listening quic+stun <ip:port> ...`) with a deadline.
final class RelayProcess: @unchecked Sendable {
    let process = Process()
    let fingerprint: String
    let address: String
    /// The same relay by name, "localhost:port" (the library resolves it).
    var name: String { "localhost:" + (address.split(separator: ":").last.map(String.init) ?? "") }

    init(executable: String, directory: URL, listen: String = "127.0.0.1:0",
         timeout: TimeInterval = 15) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--listen", listen, "--stun-alt", "none", "--http3", "off",
            "--seed", directory.appendingPathComponent("relay.seed").path, "--log-level", "warn",
        ]
        let out = Pipe()
        process.standardOutput = out
        let lines = LineCollector()
        out.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                lines.finish()
            } else {
                lines.append(data)
            }
        }
        try process.run()
        var fingerprint: String?
        var address: String?
        let deadline = ProcessInfo.processInfo.systemUptime + timeout
        lineLoop: while fingerprint == nil || address == nil {
            guard let line = lines.nextLine(until: deadline) else { break lineLoop }
            let words = line.split(separator: " ").map(String.init)
            if words.count >= 2, words[0] == "fingerprint" {
                fingerprint = words[1]
            } else if words.count >= 3, words[0] == "listening", words[1] == "quic+stun" {
                address = words[2]
            }
        }
        guard let fingerprint, let address else {
            if process.isRunning { process.terminate() }
            throw RelayError.startup("parley-relay printed no fingerprint/listening line within \(timeout) s "
                + "(got: \(lines.all.debugDescription))")
        }
        self.fingerprint = fingerprint
        self.address = address
    }

    /// SIGTERM, then SIGKILL if the relay has not exited within `grace` seconds.
    func terminate(grace: TimeInterval = 5) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ProcessInfo.processInfo.systemUptime + grace
        while process.isRunning && ProcessInfo.processInfo.systemUptime < deadline {
            Thread.sleep(forTimeInterval: 0.01)  // waiting for a child to exit: bounded
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    enum RelayError: Error { case startup(String) }
}

/// Lines from a pipe, handed from the reading thread to the test thread.
final class LineCollector: @unchecked Sendable {
    private let cond = NSCondition()
    private var buffer = Data()
    private var lines: [String] = []
    private var done = false
    private(set) var all: [String] = []

    func append(_ data: Data) {
        cond.lock()
        buffer.append(data)
        while let nl = buffer.firstIndex(of: 0x0A) {
            let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
            buffer.removeSubrange(buffer.startIndex...nl)
            lines.append(line)
            all.append(line)
        }
        cond.broadcast()
        cond.unlock()
    }

    func finish() {
        cond.lock()
        done = true
        cond.broadcast()
        cond.unlock()
    }

    /// The next line, or nil at end of stream or when `deadline` (systemUptime) passes.
    func nextLine(until deadline: TimeInterval) -> String? {
        cond.lock()
        defer { cond.unlock() }
        while lines.isEmpty && !done {
            let left = deadline - ProcessInfo.processInfo.systemUptime
            if left <= 0 { return nil }
            _ = cond.wait(until: Date(timeIntervalSinceNow: left))
        }
        return lines.isEmpty ? nil : lines.removeFirst()
    }
}
