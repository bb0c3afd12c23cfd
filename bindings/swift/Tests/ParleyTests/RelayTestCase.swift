import Foundation
import Parley
import XCTest

/// The base of tests against the real libparley and a real parley-relay process (its path in
/// the environment variable PARLEY_RELAY): a scratch directory, the relay, and contexts that
/// are closed in tearDown.
class RelayTestCase: XCTestCase {
    var relay: RelayProcess?
    var scratch: URL?
    var contexts: [Context] = []

    override func tearDown() {
        for ctx in contexts { ctx.close() }
        contexts.removeAll()
        relay?.terminate()
        relay = nil
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
        scratch = nil
        super.tearDown()
    }

    func scratchDirectory() throws -> URL {
        if let scratch { return scratch }
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("parley-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        scratch = dir
        return dir
    }

    /// Starts `relay`, on `listen` (tearDown terminates it).
    func startRelay(listen: String = "127.0.0.1:0") throws -> RelayProcess {
        guard let path = ProcessInfo.processInfo.environment["PARLEY_RELAY"], !path.isEmpty else {
            throw XCTSkip("PARLEY_RELAY is not set (path of the parley-relay executable)")
        }
        let r = try RelayProcess(executable: path, directory: try scratchDirectory(), listen: listen)
        relay = r
        XCTAssertEqual(r.fingerprint.count, 64)
        return r
    }

    /// A context with a fresh identity that pins the relay's fingerprint; `configure` may
    /// change the rest of its configuration.
    func party(_ relay: RelayProcess,
               configure: (inout Context.Configuration) -> Void = { _ in }) throws -> Context {
        var config = Context.Configuration(relayAddress: relay.name,  // resolved by the library
                                           relayFingerprint: relay.fingerprint)
        config.includeLoopback = true
        configure(&config)
        let ctx = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(ctx)
        return ctx
    }

    func waitRegistered(_ ctx: Context, timeout: TimeInterval = 10) throws {
        try ctx.waitFor(timeout: timeout) { event in
            if case .relayState(.registered, _) = event { return true }
            return false
        }
    }
}
