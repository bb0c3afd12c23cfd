// parley-swift-example: two parties in one process call each other through a parley relay.
//
//   parley-swift-example <parley-relay binary> [seconds]
//
// Starts the relay on loopback (pinning the fingerprint it prints), creates two contexts with
// fresh identities, lets A call B, B accept, plays a 440 Hz tone from A's "microphone" for
// `seconds` (default 1) while B's "speaker" records, sends a datagram, prints what B heard
// and the call's statistics, and hangs up. Exit status 0 when B heard the tone.
import Foundation
import Parley

@main
struct Example {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 2 else {
            FileHandle.standardError.write(Data("usage: parley-swift-example <parley-relay binary> [seconds]\n".utf8))
            exit(2)
        }
        let seconds = args.count >= 3 ? Double(args[2]) ?? 1 : 1
        do {
            try run(relayBinary: args[1], seconds: seconds)
        } catch {
            FileHandle.standardError.write(Data("parley-swift-example: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(relayBinary: String, seconds: Double) throws {
        print("libparley \(ParleyLibrary.versionString)")
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("parley-swift-example-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let relay = try Relay(binary: relayBinary, seedFile: dir.appendingPathComponent("relay.seed").path)
        defer { relay.stop() }
        print("relay \(relay.address) fingerprint \(relay.fingerprint)")

        // Two parties, each with its own identity, both pinning the relay.
        var config = Context.Configuration(relayAddress: relay.address, relayFingerprint: relay.fingerprint)
        config.includeLoopback = true  // both parties on one machine: allow a direct path
        let alice = try Context(identity: Identity.generate(), configuration: config)
        let bob = try Context(identity: Identity.generate(), configuration: config)
        defer { alice.close(); bob.close() }

        for ctx in [alice, bob] {
            try ctx.waitFor(timeout: 10) { event in
                if case .relayState(.registered, _) = event { return true }
                return false
            }
        }
        print("both registered")

        let outgoing = try alice.call(bob.fingerprint)
        let incomingEvent = try bob.waitFor(timeout: 10) { event in
            if case .incomingCall = event { return true }
            return false
        }
        guard case .incomingCall(let incoming) = incomingEvent else { return }
        print("bob: incoming call from \(incoming.peer.prefix(16))...")
        try incoming.accept()
        for (ctx, call) in [(alice, outgoing), (bob, incoming)] {
            try ctx.waitFor(timeout: 10) { event in
                guard case .callState(let c, let state, let error, _, _) = event, c === call else { return false }
                if let error { throw error }
                return state == .active
            }
        }
        print("call active")

        // A simulated sound card: every 20 ms push one chunk to A, pull one chunk from B.
        let rate = 48_000, chunk = 960
        let ticks = Int(seconds * Double(rate)) / chunk
        var mic = [Int16](repeating: 0, count: chunk)
        var speaker = [Int16](repeating: 0, count: chunk)
        var heard: [Int16] = []
        let start = ProcessInfo.processInfo.systemUptime
        for tick in 0..<ticks {
            for i in 0..<chunk {
                let t = Double(tick * chunk + i) / Double(rate)
                mic[i] = Int16(8000 * sin(2 * Double.pi * 440 * t))
            }
            mic.withUnsafeBufferPointer { _ = outgoing.push($0) }
            speaker.withUnsafeMutableBufferPointer { _ = incoming.pull(into: $0) }
            heard += speaker
            for ctx in [alice, bob] {
                while let event = ctx.poll() { print("event: \(event)") }
            }
            let next = start + Double(tick + 1) * Double(chunk) / Double(rate)
            let left = next - ProcessInfo.processInfo.systemUptime
            if left > 0 { Thread.sleep(forTimeInterval: left) }
        }

        // What B heard in the second half: loudness and zero crossings (~2 per period).
        let half = Array(heard.suffix(heard.count / 2))
        let rms = (half.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, half.count))).squareRoot()
        var crossings = 0
        for i in 1..<max(1, half.count) where (half[i - 1] < 0) != (half[i] < 0) { crossings += 1 }
        let hz = Double(crossings) / 2 / (Double(half.count) / Double(rate))
        print(String(format: "bob heard: RMS %.0f, about %.0f Hz", rms, hz))

        try outgoing.send(datagram: Array("hello from alice".utf8))
        if case .datagram(_, let bytes)? = try? bob.waitFor(timeout: 2, { event in
            if case .datagram = event { return true }
            return false
        }) {
            print("bob got datagram: \(String(decoding: bytes, as: UTF8.self))")
        }

        let stats = try outgoing.stats()
        print("alice: path \(stats.path), rtt \(stats.rttMs) ms, frames sent \(stats.framesSent), "
            + "profile \(stats.profile)")

        try outgoing.hangup()
        try bob.waitFor(timeout: 10) { event in
            guard case .callState(let c, .ended, let error, _, _) = event, c === incoming else { return false }
            print("bob: call ended (\(error.map { "\($0)" } ?? "normal hangup"))")
            return true
        }
        guard rms > 1000, abs(hz - 440) < 20 else {
            throw ParleyError(code: ParleyError.Code.internal.rawValue, detail: "bob did not hear the tone")
        }
        print("ok")
    }
}

/// A parley-relay child process on 127.0.0.1 with an ephemeral port.
final class Relay: @unchecked Sendable {
    let process = Process()
    private(set) var fingerprint = ""
    private(set) var address = ""

    init(binary: String, seedFile: String) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--listen", "127.0.0.1:0", "--stun-alt", "none", "--http3", "off",
                             "--seed", seedFile, "--log-level", "warn"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // Read the start-up lines on a helper thread so that a silent relay cannot hang us.
        let result = StartupLines()
        let reader = pipe.fileHandleForReading
        Thread.detachNewThread {
            var text = ""
            while !(text.contains("fingerprint ") && text.contains("listening ")) || !text.hasSuffix("\n") {
                let data = reader.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            result.set(text)
        }
        guard let text = result.wait(seconds: 15) else {
            stop()
            throw ParleyError(code: ParleyError.Code.timeout.rawValue, detail: "parley-relay did not start")
        }
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count >= 2, words[0] == "fingerprint" { fingerprint = String(words[1]) }
            if words.count >= 3, words[0] == "listening" { address = String(words[2]) }
        }
        if fingerprint.isEmpty || address.isEmpty {
            stop()
            throw ParleyError(code: ParleyError.Code.internal.rawValue, detail: "unexpected relay output: \(text)")
        }
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

final class StartupLines: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var text = ""

    func set(_ t: String) {
        text = t
        done.signal()
    }

    func wait(seconds: Double) -> String? {
        done.wait(timeout: .now() + seconds) == .success ? text : nil
    }
}
