"""The ctypes mirror of parley.h: struct layouts and enum values match the header.

ctypes cannot read a header, so a layout typo would silently corrupt memory. When a C
compiler and the header are at hand, a tiny C program prints offsetof/sizeof of every field
the binding declares and the test compares them; the enum values are compared with the
header's text. The header may grow (append-only) ahead of the binding: that only warns.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

import parley
from parley import _enums, _native

STRUCTS = {
    "parley_event": _native.EventStruct,
    "parley_context_config": _native.ContextConfigStruct,
    "parley_call_stats": _native.CallStatsStruct,
    "parley_netcheck_options": _native.NetcheckOptionsStruct,
    "parley_room_member": _native.RoomMemberStruct,
}


def _include_dir() -> Path:
    env = os.environ.get("PARLEY_INCLUDE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "include"


def _header() -> Path:
    header = _include_dir() / "parley" / "parley.h"
    if not header.is_file():
        pytest.skip(f"no header at {header} (set PARLEY_INCLUDE_DIR)")
    return header


def test_layouts_are_sane() -> None:
    ptr = ctypes.sizeof(ctypes.c_void_p)
    for struct in STRUCTS.values():
        previous_end = 0
        for name, ctype in struct._fields_:
            field = getattr(struct, name)
            assert field.offset >= previous_end, (struct.__name__, name)
            assert field.offset % ctypes.alignment(ctype) == 0, (struct.__name__, name)
            previous_end = field.offset + field.size
        assert ctypes.sizeof(struct) >= previous_end
    # Size fields come first; pointers sit where the header says on LP64 and ILP32 alike.
    assert _native.ContextConfigStruct.struct_size.offset == 0
    assert _native.CallStatsStruct.struct_size.offset == 0
    assert _native.EventStruct.call.offset == ptr
    assert _native.EventStruct.peer.size == parley.FINGERPRINT_HEX_LEN + 1
    assert _native.EVENT_MIN_SIZE == _native.EventStruct.len.offset + ctypes.sizeof(ctypes.c_size_t)
    # The room fields were appended after the 0.1.0 layout, never inserted into it.
    assert _native.EventStruct.room.offset > _native.EventStruct.timestamp.offset
    assert [name for name, _ in _native.EventStruct._fields_][-6:] == [
        "room", "stream_id", "sequence", "member_count", "origin", "user_data"]
    # origin was appended after the room fields, user_data (0.2.0) after origin.
    assert _native.EventStruct.origin.offset > _native.EventStruct.member_count.offset
    assert _native.EventStruct.user_data.offset > _native.EventStruct.origin.offset
    assert _native.EventStruct.user_data.offset % ptr == 0
    assert _native.RoomMemberStruct.fingerprint.size == parley.FINGERPRINT_HEX_LEN + 1


def test_layouts_match_the_c_compiler(tmp_path) -> None:
    header = _header()
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <parley/parley.h>",
             "int main(void) {"]
    for cname, struct in STRUCTS.items():
        lines.append(f'  printf("{cname} sizeof %zu\\n", sizeof({cname}));')
        for field, _ in struct._fields_:
            lines.append(f'  printf("{cname} {field} %zu %zu\\n", offsetof({cname}, {field}), '
                         f"sizeof((({cname} *)0)->{field}));")
    lines += ["  return 0;", "}"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c99", "-I", str(header.parent.parent), "-o", str(exe), str(source)],
                   check=True, timeout=60)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        words = line.split()
        struct = STRUCTS[words[0]]
        if words[1] == "sizeof":
            c_size = int(words[2])
            if ctypes.sizeof(struct) < c_size:
                warnings.warn(f"{words[0]} grew in the header ({c_size} > "
                              f"{ctypes.sizeof(struct)}): mirror its new fields")
            assert ctypes.sizeof(struct) <= c_size, words[0]
            continue
        field = getattr(struct, words[1])
        assert (field.offset, field.size) == (int(words[2]), int(words[3])), line


_ENUMS = [
    (r"PARLEY_(OK)\b", _enums.ErrorCode),
    (r"PARLEY_ERR_(\w+)", _enums.ErrorCode),
    (r"PARLEY_EVENT_(\w+)", _enums.EventType),
    (r"PARLEY_CALL_(INVITING|RINGING|INCOMING|ACTIVE|ENDED)", _enums.CallState),
    (r"PARLEY_RELAY_(\w+)", _enums.RelayState),
    (r"PARLEY_ORIGIN_(\w+)", _enums.Origin),
    (r"PARLEY_PATH_(\w+)", _enums.Path),
    (r"PARLEY_LOG_(\w+)", _enums.LogLevel),
    (r"PARLEY_QUALITY_REASON_(\w+)", _enums.QualityReason),
    (r"PARLEY_QUALITY_MODE_(\w+)", _enums.QualityMode),
    (r"PARLEY_NETCHECK_(JSON|TEXT)", _enums.NetcheckFormat),
]


def test_enums_match_the_header() -> None:
    text = _header().read_text()
    for pattern, enum in _ENUMS:
        found = re.findall(r"(?:^|\s)" + pattern + r"\s*=?\s*(-?\d+)\b", text, re.M)
        assert found, pattern
        for name, value in found:
            if name in enum.__members__:
                assert enum[name] == int(value), (enum.__name__, name)
            else:
                warnings.warn(f"{enum.__name__} lacks {name} = {value}: the header grew")
    constants = {
        "PARLEY_SEED_LEN": _enums.SEED_LEN,
        "PARLEY_PUBLIC_KEY_LEN": _enums.PUBLIC_KEY_LEN,
        "PARLEY_FINGERPRINT_BUF_LEN": _enums.FINGERPRINT_BUF_LEN,
        "PARLEY_DATAGRAM_MAX": _enums.DATAGRAM_MAX,
        "PARLEY_ROOM_ID_HEX_LEN": _enums.ROOM_ID_HEX_LEN,
        "PARLEY_ROOM_ID_BUF_LEN": _enums.ROOM_ID_BUF_LEN,
        "PARLEY_NETCHECK_REPORT_MAX": _enums.NETCHECK_REPORT_MAX,
        "PARLEY_VERSION_MAJOR": _enums.VERSION_MAJOR,
        "PARLEY_VERSION_MINOR": _enums.VERSION_MINOR,
    }
    for name, value in constants.items():
        m = re.search(r"#define " + name + r"\s+(\d+)", text)
        assert m and int(m.group(1)) == value, name


def test_library_version() -> None:
    assert parley.version() >> 16 == _enums.VERSION_MAJOR
    assert parley.version_string().count(".") == 2
    assert parley.library_path()


def test_prototypes_name_header_functions() -> None:
    """Every function the binding declares is in the header (a typo would only show as a
    missing optional function); header functions the binding lacks only warn."""
    text = _header().read_text()
    declared = set(re.findall(r"PARLEY_API\s[^;(]*?\b(parley_\w+)\s*\(", text))
    assert {"parley_version", "parley_room_send", "parley_context_wait_event_sized"} <= declared
    bound = set(_native._REQUIRED) | set(_native._OPTIONAL)
    assert bound <= declared, sorted(bound - declared)
    unbound_on_purpose = {
        "parley_log_set_callback",  # a Python sink would run on library threads; stderr it is
    }
    for name in sorted(declared - bound - unbound_on_purpose):
        warnings.warn(f"the binding does not declare {name}")


def test_context_config_through_config_init_sized(monkeypatch) -> None:
    """Context fills its config through parley_context_config_init_sized with the ctypes
    struct's size (the header's parley_context_config_init is a macro), then its fields."""
    sizes = []
    real = _native.lib.context_config_init_sized

    def spy(config, size):
        sizes.append(size)
        return real(config, size)

    monkeypatch.setattr(_native.lib, "context_config_init_sized", spy)
    with parley.Identity.generate() as me, \
            parley.Context(me, "127.0.0.1:9", quality_mode=parley.QualityMode.FIXED,
                           quality_profile=2) as ctx:
        assert not ctx.closed
    assert sizes == [ctypes.sizeof(_native.ContextConfigStruct)]
    with parley.Identity.generate() as me, pytest.raises(parley.Error) as info:
        parley.Context(me, "127.0.0.1:9", quality_mode=parley.QualityMode.FIXED,
                       quality_profile=7)
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT


def test_error_and_event_type_names_come_from_the_library() -> None:
    """parley_error_name / parley_event_type_name agree with the binding's tables, and name
    what the tables lack (the library's word for a code newer than the binding)."""
    for code in parley.ErrorCode:
        assert _native.lib.error_name(int(code)).decode() == code.c_name
        assert parley.Error(int(code)).name == code.c_name
    for etype in parley.EventType:
        assert _native.lib.event_type_name(int(etype)).decode() == "PARLEY_EVENT_" + etype.name
    assert _native.lib.error_name(-9999) == b"unknown"
    assert _native.lib.event_type_name(9999) == b"unknown"
    assert parley.ErrorCode.NOT_A_MEMBER == -51 and parley.ErrorCode.CALL_NOT_ACTIVE == -52
    assert parley.ErrorCode.WRONG_CALL_STATE == -53


def test_version_is_0_2() -> None:
    assert parley.__version__ == "0.2.0"
    assert (_enums.VERSION_MAJOR, _enums.VERSION_MINOR) == (0, 2)
    assert parley.version() >= _enums.VERSION_NUM
