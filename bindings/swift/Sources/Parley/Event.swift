/// An event from a context (`parley_event`), polled with ``Context/poll()``.
public enum Event: Sendable {
    /// The relay connection changed state; `error` says why it was lost (nil otherwise).
    case relayState(RelayState, error: ParleyError?)
    /// No relay fingerprint was configured, so the relay's identity was trusted on first use
    /// and is pinned for the rest of the context's life: store `fingerprint` and pass it as
    /// ``Context/Configuration/relayFingerprint`` from then on (or compare it with one
    /// obtained out of band and close the context if it differs). At most once per context,
    /// right after the first ``RelayState/registered``.
    case relayTrusted(fingerprint: String)
    /// A call to us: accept or reject it (``Call/accept()``, ``Call/reject()``). The call's
    /// peer fingerprint is ``Call/peer``.
    case incomingCall(Call)
    /// A call changed state. When it ended, `error` says why (nil: a normal hangup) and
    /// `text` has the reason in words.
    case callState(Call, CallState, error: ParleyError?, text: String)
    /// An application datagram from the peer.
    case datagram(Call, [UInt8])
    /// The call's media moved between paths; `reason` in words.
    case pathChanged(Call, from: Path, to: Path, reason: String)
    /// The voice profile we send with changed.
    case qualityChanged(Call, QualityChange)
    /// An error from the relay not tied to a call (or, in later versions, tied to `call`).
    case error(ParleyError, call: Call?)
    /// An event type newer than this binding (`type` is its `parley_event_type`).
    case other(type: Int32, call: Call?)

    /// The call the event concerns, if any.
    public var call: Call? {
        switch self {
        case .relayState, .relayTrusted: return nil
        case .incomingCall(let c): return c
        case .callState(let c, _, _, _): return c
        case .datagram(let c, _): return c
        case .pathChanged(let c, _, _, _): return c
        case .qualityChanged(let c, _): return c
        case .error(_, let c): return c
        case .other(_, let c): return c
        }
    }
}

extension Event: CustomStringConvertible {
    public var description: String {
        switch self {
        case .relayState(let s, let e):
            return "relayState(\(s)\(e.map { ", error: \($0)" } ?? ""))"
        case .relayTrusted(let fp):
            return "relayTrusted(\(fp))"
        case .incomingCall(let c):
            return "incomingCall(from: \(c.peer))"
        case .callState(let c, let s, let e, let t):
            return "callState(\(c.peer.prefix(8)), \(s)\(e.map { ", error: \($0)" } ?? "")\(t.isEmpty ? "" : ", \"\(t)\""))"
        case .datagram(let c, let d):
            return "datagram(\(c.peer.prefix(8)), \(d.count) bytes)"
        case .pathChanged(let c, let from, let to, let r):
            return "pathChanged(\(c.peer.prefix(8)), \(from) -> \(to), \"\(r)\")"
        case .qualityChanged(let c, let q):
            return "qualityChanged(\(c.peer.prefix(8)), \(q.from) -> \(q.to), \(q.reason), \"\(q.name)\")"
        case .error(let e, _):
            return "error(\(e))"
        case .other(let t, _):
            return "other(type: \(t))"
        }
    }
}
