import CParley

/// An event from a context (`parley_event`), polled with ``Context/poll()``,
/// ``Context/next(timeout:)`` or ``Context/waitFor(timeout:_:)``.
public enum Event: Sendable {
    /// The relay connection changed state; `error` says why it was lost (nil otherwise).
    /// The state ``RelayState/untrusted`` arrives as ``relayUntrusted(fingerprint:)`` instead.
    case relayState(RelayState, error: ParleyError?)
    /// No longer raised: libparley does not trust a relay on first use any more (see
    /// ``relayUntrusted(fingerprint:)``). Kept so that code matching it still compiles.
    case relayTrusted(fingerprint: String)
    /// The relay state went to ``RelayState/untrusted``: no relay fingerprint was configured,
    /// and the relay presented the identity `fingerprint` (nothing of ours reached it). Nothing
    /// goes on until the host decides: check it (against one obtained out of band, or ask the
    /// user) and call ``Context/trustRelay(_:)``, or close the context. Store the trusted
    /// fingerprint and pass it as ``Context/Configuration/relayFingerprint`` from then on.
    case relayUntrusted(fingerprint: String)
    /// A call to us: accept or reject it (``Call/accept()``, ``Call/reject()``). The call's
    /// peer fingerprint is ``Call/peer``.
    case incomingCall(Call)
    /// A call changed state. When it ended, `error` says why (nil: a normal hangup) and
    /// `text` has the reason in words; `origin` says whose words they are (``Origin/local``:
    /// parley's; ``Origin/relay`` and ``Origin/peer``: untrusted, show them quoted).
    case callState(Call, CallState, error: ParleyError?, text: String, origin: Origin)
    /// An application datagram from the peer.
    case datagram(Call, [UInt8])
    /// The call's media moved between paths; `reason` in words.
    case pathChanged(Call, from: Path, to: Path, reason: String)
    /// The voice profile we send with changed.
    case qualityChanged(Call, QualityChange)
    /// A room's membership changed, or our join took effect: `memberCount` members
    /// (ourselves included; ``Room/members()`` lists them) and `ownStream`, the stream id our
    /// own frames carry in this room.
    case roomUpdate(Room, memberCount: Int, ownStream: UInt32)
    /// A frame from another member of a room: `sender` is its fingerprint (as the relay
    /// announced it), `stream` its stream id, and `sequence`, `timestamp` and `payload` are
    /// exactly what it passed to ``Room/send(_:sequence:timestamp:profile:)``. parley does not
    /// encrypt room frames: the relay could read (and alter) the payload, so open it with the
    /// key the members share and drop what does not authenticate.
    case roomFrame(Room, sender: String, stream: UInt32, sequence: UInt32, timestamp: UInt32,
                   payload: [UInt8])
    /// The relay, judging from what all members report, changed the voice profile of a room:
    /// pass `to` as ``Room/send(_:sequence:timestamp:profile:)``'s `profile` from then on.
    case roomQualityChanged(Room, QualityChange)
    /// An error from the relay not tied to a call (or, in later versions, tied to `call`),
    /// e.g. a refused ``Context/join(room:)`` (room full, too many rooms). `origin` says whose
    /// words the error's text is (relay errors: ``Origin/relay``, untrusted).
    case error(ParleyError, call: Call?, origin: Origin)
    /// parley refused an invite from `from` (a fingerprint) without ringing: its media key was
    /// forged, stale or replayed (`error` is `PARLEY_ERR_MEDIA_KEY`, its detail parley's own
    /// reason). No ``Call`` exists for it. Whoever sent it learned that this identity is
    /// online, which the host may want to know.
    case inviteRefused(from: String, error: ParleyError)
    /// An event type newer than this binding (`type` is its `parley_event_type`).
    case other(type: Int32, call: Call?)

    /// The call the event concerns, if any.
    public var call: Call? {
        switch self {
        case .relayState, .relayTrusted, .relayUntrusted, .inviteRefused: return nil
        case .incomingCall(let c): return c
        case .callState(let c, _, _, _, _): return c
        case .datagram(let c, _): return c
        case .pathChanged(let c, _, _, _): return c
        case .qualityChanged(let c, _): return c
        case .error(_, let c, _): return c
        case .other(_, let c): return c
        case .roomUpdate, .roomFrame, .roomQualityChanged: return nil
        }
    }

    /// The room the event concerns, if any.
    public var room: Room? {
        switch self {
        case .roomUpdate(let r, _, _): return r
        case .roomFrame(let r, _, _, _, _, _): return r
        case .roomQualityChanged(let r, _): return r
        default: return nil
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
        case .relayUntrusted(let fp):
            return "relayUntrusted(\(fp))"
        case .inviteRefused(let from, let e):
            return "inviteRefused(from: \(from.prefix(8)), \(e))"
        case .incomingCall(let c):
            return "incomingCall(from: \(c.peer))"
        case .callState(let c, let s, let e, let t, let o):
            let error = e.map { ", error: \($0)" } ?? ""
            let who = o == .local ? "" : "\(o): "
            let text = t.isEmpty ? "" : ", \(who)\"\(t)\""
            return "callState(\(c.peer.prefix(8)), \(s)\(error)\(text))"
        case .datagram(let c, let d):
            return "datagram(\(c.peer.prefix(8)), \(d.count) bytes)"
        case .pathChanged(let c, let from, let to, let r):
            return "pathChanged(\(c.peer.prefix(8)), \(from) -> \(to), \"\(r)\")"
        case .qualityChanged(let c, let q):
            return "qualityChanged(\(c.peer.prefix(8)), \(q.from) -> \(q.to), \(q.reason), \"\(q.name)\")"
        case .roomUpdate(let r, let n, let stream):
            return "roomUpdate(\(r.id.prefix(8)), \(n) members, own stream \(stream))"
        case .roomFrame(let r, let sender, let stream, let seq, let ts, let payload):
            return "roomFrame(\(r.id.prefix(8)), from \(sender.prefix(8)) stream \(stream), seq \(seq), ts \(ts), \(payload.count) bytes)"
        case .roomQualityChanged(let r, let q):
            return "roomQualityChanged(\(r.id.prefix(8)), \(q.from) -> \(q.to), \(q.reason), \"\(q.name)\")"
        case .error(let e, _, let o):
            return "error(\(e)\(o == .local ? "" : ", from \(o)"))"
        case .other(let t, _):
            return "other(\(String(cString: parley_event_type_name(t))), type: \(t))"
        }
    }
}
