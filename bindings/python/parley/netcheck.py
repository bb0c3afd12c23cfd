"""parley.netcheck: the network diagnosis (candidates, NAT type) as one blocking call.

parley_netcheck_run blocks for up to ~max(deadline, 4.5 s); ctypes releases the GIL around
it, so running it on a worker thread does not stall the rest of the program.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any, Dict, Optional, Sequence, Union

from ._enums import NETCHECK_REPORT_MAX, NetcheckFormat
from ._native import NetcheckOptionsStruct, c_str, lib
from .errors import check


def netcheck(
    stun_servers: Sequence[str],
    *,
    bind_address: Optional[str] = None,
    deadline_ms: int = 0,
    include_loopback: bool = False,
    relay_address: Optional[str] = None,
    text: bool = False,
) -> Union[Dict[str, Any], str]:
    """Runs parley_netcheck_run. Returns the JSON report parsed (docs/netcheck.md), or the
    human-readable report when `text` is true."""
    servers = [c_str(s) for s in stun_servers]
    array = (ctypes.c_char_p * max(1, len(servers)))(*servers)
    options = NetcheckOptionsStruct()
    # parley_netcheck_options_init (a macro): defaults, and struct_size as far as both know.
    check(lib.netcheck_options_init_sized(ctypes.byref(options), ctypes.sizeof(options)),
          "parley_netcheck_options_init_sized")
    options.stun_servers = ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p))
    options.stun_server_count = len(servers)
    options.bind_address = c_str(bind_address)
    options.deadline_ms = deadline_ms
    options.include_loopback = 1 if include_loopback else 0
    options.format = NetcheckFormat.TEXT if text else NetcheckFormat.JSON
    options.relay_address = c_str(relay_address)
    buf = ctypes.create_string_buffer(NETCHECK_REPORT_MAX)
    size = ctypes.c_size_t(NETCHECK_REPORT_MAX)
    check(lib.netcheck_run(ctypes.byref(options), buf, ctypes.byref(size)), "parley_netcheck_run")
    report = buf.value.decode(errors="replace")
    return report if text else json.loads(report)
