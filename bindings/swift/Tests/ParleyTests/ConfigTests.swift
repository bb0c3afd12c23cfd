import Foundation
import Parley
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A UDP socket bound to [::1] on an ephemeral port (nil: no IPv6 loopback here), held until
/// ``close()``.
private final class IPv6LoopbackSocket {
    let fd: Int32
    let port: UInt16

    init?() {
        #if canImport(Glibc)
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        #else
        let fd = socket(AF_INET6, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in6()
        addr.sin6_family = sa_family_t(AF_INET6)
        var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = inet_pton(AF_INET6, "::1", &addr.sin6_addr) == 1 && withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard bound else {
            _ = closeSocket(fd)
            return nil
        }
        self.fd = fd
        self.port = UInt16(bigEndian: addr.sin6_port)
    }

    func close() { _ = closeSocket(fd) }
}

private func closeSocket(_ fd: Int32) -> Int32 { close(fd) }

/// The context options appended to `parley_context_config` (bindAddress6, noPathTimeoutMs,
/// dtx, portRange, qualityBestProfile, disableNetworkWatch, stunServers, portMapping): each
/// reaches the library, shown by what only it explains. portMapping is never turned on here
/// (it would ask this machine's real gateway for a port). Every wait is bounded by a deadline.
final class ConfigTests: RelayTestCase {
    /// Far below the default (30 s): a call that ends within the wait was ended by it.
    private let noPathMs: UInt32 = 500
    /// A STUN server nobody answers on: calls never wait for STUN answers.
    private let deadStun = "127.0.0.1:3478"

    private func requireIPv6() throws {
        guard let s = IPv6LoopbackSocket() else { throw XCTSkip("no IPv6 loopback (::1)") }
        s.close()
    }

    private func assertCreateThrows(_ config: Context.Configuration, _ code: ParleyError.Code,
                                    mentioning field: String? = nil,
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Context(identity: Identity.generate(), configuration: config),
                             file: file, line: line) { error in
            guard let e = error as? ParleyError else {
                return XCTFail("not a ParleyError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(e.knownCode, code, "\(e)", file: file, line: line)
            XCTAssertEqual(e.name, code.cName, file: file, line: line)
            if let field { XCTAssertTrue(e.message.contains(field), e.message, file: file, line: line) }
        }
    }

    func testRefusedValuesReachTheLibrary() throws {
        var config = Context.Configuration(relayAddress: "127.0.0.1:9")
        config.bindAddress = "127.0.0.1:0"
        config.bindAddress6 = "127.0.0.1:0"
        assertCreateThrows(config, .addressFamily)
        XCTAssertEqual(ParleyError.Code.addressFamily.rawValue, -49)
        XCTAssertEqual(ParleyError.Code.addressFamily.cName, "PARLEY_ERR_ADDRESS_FAMILY")
        config.bindAddress6 = "not an address"
        assertCreateThrows(config, .addressInvalid, mentioning: "bind_address6")

        config = Context.Configuration(relayAddress: "127.0.0.1:9")
        config.portRange = 5000...5000
        config.bindAddress = "127.0.0.1:4000"  // a port and a range: refused
        assertCreateThrows(config, .invalidArgument, mentioning: "port_min")

        config = Context.Configuration(relayAddress: "127.0.0.1:9")
        config.qualityBestProfile = 9
        assertCreateThrows(config, .invalidArgument, mentioning: "quality_best_profile")

        // The error enum reaches the header's newest code.
        XCTAssertEqual(ParleyError.Code.allAddressesFailed.rawValue, -50)
        XCTAssertEqual(ParleyError.Code.allAddressesFailed.cName, "PARLEY_ERR_ALL_ADDRESSES_FAILED")
        XCTAssertEqual(ParleyError.name(of: -50), "PARLEY_ERR_ALL_ADDRESSES_FAILED")
    }

    func testStunServersReachTheLibrary() throws {
        var config = Context.Configuration(relayAddress: "127.0.0.1:9")
        XCTAssertEqual(config.stunServers, [])
        XCTAssertFalse(config.portMapping)
        XCTAssertFalse(config.disableNetworkWatch)
        config.stunServers = [deadStun]
        config.portMapping = false
        config.disableNetworkWatch = true
        let ctx = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(ctx)
        XCTAssertEqual(ctx.configuration.stunServers, [deadStun])
        XCTAssertTrue(ctx.configuration.disableNetworkWatch)
        XCTAssertFalse(ctx.configuration.portMapping)
        ctx.close()

        let eight = (1...Context.Configuration.stunServersMax).map { "127.0.0.\($0):3478" }
        config.stunServers = eight
        let full = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(full)
        full.close()

        config.stunServers = ["not a host:port"]
        assertCreateThrows(config, .invalidArgument, mentioning: "STUN server")
        config.stunServers = eight + ["127.0.0.9:3478"]
        assertCreateThrows(config, .invalidArgument, mentioning: "at most 8")
        // An entry holding a comma would read as two in the C field: refused by the binding.
        config.stunServers = ["\(deadStun),\(deadStun)"]
        assertCreateThrows(config, .invalidArgument, mentioning: "stunServers[0]")
    }

    /// A STUN server that never answers costs nothing: both register and a call goes active.
    func testDeadStunServerCostsNothing() throws {
        let relay = try startRelay()
        var config = Context.Configuration(relayAddress: relay.name,
                                           relayFingerprint: relay.fingerprint)
        config.includeLoopback = true
        config.stunServers = [deadStun]
        config.portMapping = false
        config.disableNetworkWatch = true
        let a = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(a)
        let b = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(b)
        try waitRegistered(a)
        try waitRegistered(b)
        let callA = try a.call(b.fingerprint)
        let incoming = try b.waitFor(timeout: 10) { event in
            if case .incomingCall = event { return true }
            return false
        }
        let callB = try XCTUnwrap(incoming.call)
        try callB.accept()
        for (ctx, call) in [(a, callA), (b, callB)] {
            try ctx.waitFor(timeout: 10) { event in
                guard case .callState(let c, .active, _, _, _) = event, c === call else { return false }
                return true
            }
        }
    }

    func testBindAddress6PortIsBound() throws {
        guard let taken = IPv6LoopbackSocket() else { throw XCTSkip("no IPv6 loopback (::1)") }
        defer { taken.close() }
        var config = Context.Configuration(relayAddress: "127.0.0.1:9")
        config.bindAddress = "127.0.0.1:0"
        config.bindAddress6 = "[::1]:\(taken.port)"
        assertCreateThrows(config, .socket)
    }

    func testDualBindRegistersWithTheRelay() throws {
        try requireIPv6()
        let relay = try startRelay()
        var config = Context.Configuration(relayAddress: relay.address,
                                           relayFingerprint: relay.fingerprint)
        config.bindAddress = "127.0.0.1:0"
        config.bindAddress6 = "[::1]:0"
        config.dtx = true
        config.noPathTimeoutMs = 5000
        let ctx = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(ctx)
        try waitRegistered(ctx)
        XCTAssertEqual(ctx.configuration.bindAddress6, "[::1]:0")
        XCTAssertEqual(ctx.configuration.noPathTimeoutMs, 5000)
        XCTAssertTrue(ctx.configuration.dtx)
    }

    /// An IPv6-only relay: an IPv4 bindAddress alone cannot reach it (-49); the contexts'
    /// IPv6 sockets on bindAddress6 register with it and carry a relay call. (Next to an IPv4
    /// bindAddress the library refuses an IPv6 relay *literal* at create: its family check
    /// looks at bindAddress only; a relay name would connect over the IPv6 socket.) Then the
    /// relay goes away and the calls end with `PARLEY_ERR_NO_PATH` after noPathTimeoutMs,
    /// long before the default 30 s.
    func testBindAddress6CarriesAnIPv6RelayAndNoPathTimeoutEndsTheCall() throws {
        try requireIPv6()
        let relay = try startRelay(listen: "[::1]:0")
        XCTAssertTrue(relay.address.hasPrefix("[::1]:"), relay.address)
        var config = Context.Configuration(relayAddress: relay.address,
                                           relayFingerprint: relay.fingerprint)
        config.bindAddress = "127.0.0.1:0"
        assertCreateThrows(config, .addressFamily)

        config.bindAddress = nil
        config.bindAddress6 = "[::1]:0"
        config.disableDirect = true
        config.dtx = true
        config.noPathTimeoutMs = noPathMs
        let a = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(a)
        let b = try Context(identity: Identity.generate(), configuration: config)
        contexts.append(b)
        try waitRegistered(a)
        try waitRegistered(b)
        let callA = try a.call(b.fingerprint)
        let incoming = try b.waitFor(timeout: 10) { event in
            if case .incomingCall = event { return true }
            return false
        }
        let callB = try XCTUnwrap(incoming.call)
        try callB.accept()
        for (ctx, call) in [(a, callA), (b, callB)] {
            try ctx.waitFor(timeout: 10) { event in
                guard case .callState(let c, .active, _, _, _) = event, c === call else { return false }
                return true
            }
        }
        XCTAssertEqual(try callA.stats().path, .relay)

        relay.terminate()
        for (ctx, call) in [(a, callA), (b, callB)] {
            var ended: (ParleyError?, String)?
            try ctx.waitFor(timeout: 10) { event in
                guard case .callState(let c, .ended, let error, let text, _) = event, c === call else {
                    return false
                }
                ended = (error, text)
                return true
            }
            XCTAssertEqual(ended?.0?.knownCode, .noPath, "\(String(describing: ended))")
            XCTAssertTrue(ended?.1.contains("\(noPathMs) ms") ?? false, "\(String(describing: ended))")
        }
    }
}
