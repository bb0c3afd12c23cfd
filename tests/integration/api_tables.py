#!/usr/bin/env python3
"""The C API's numbers, written in one place and mirrored in many: fails on any drift.

The source of the error codes is src/base/error_table.h (the library's enum, descriptions and
names are generated from it, and capi/error.cc's static_asserts tie it to the header's values).
This checks what the compiler cannot:
  - the public header declares exactly the table's codes, and every other enum of the header
    (event types, states, quality modes and reasons, origins, paths, log levels) is what the
    bindings mirror: Python (parley/_enums.py), Java (ParleyException's constants, Context's
    EVENT_ constants, the enum classes) and Swift (ParleyError, the enums of Types.swift),
    name for name and number for number;
  - the linked libparley names and describes each code and event type as the header does
    (parley_error_name, parley_strerror, parley_event_type_name) and reports the header's
    version, which CMakeLists.txt and each binding's version also state.

usage: api_tables.py <source dir> <libparley.so>
"""

import ctypes
import importlib.util
import pathlib
import re
import sys

SRC = pathlib.Path(sys.argv[1])
LIB = sys.argv[2]
problems = []


def problem(text):
    problems.append(text)


def read(rel):
    return (SRC / rel).read_text()


# ---- the header ---------------------------------------------------------------------------
header = read("include/parley/parley.h")
# enum name -> (prefix of its enumerators, Python/Java/Swift type name)
ENUMS = {
    "parley_error": ("PARLEY_ERR_", "ErrorCode"),
    "parley_log_level": ("PARLEY_LOG_", "LogLevel"),
    "parley_event_type": ("PARLEY_EVENT_", "EventType"),
    "parley_quality_mode": ("PARLEY_QUALITY_MODE_", "QualityMode"),
    "parley_quality_reason": ("PARLEY_QUALITY_REASON_", "QualityReason"),
    "parley_call_state": ("PARLEY_CALL_", "CallState"),
    "parley_relay_state": ("PARLEY_RELAY_", "RelayState"),
    "parley_origin": ("PARLEY_ORIGIN_", "Origin"),
    "parley_path": ("PARLEY_PATH_", "Path"),
}
enums = {}  # type name -> {SUFFIX: value}
for cname, (prefix, tname) in ENUMS.items():
    m = re.search(r"typedef enum %s \{(.*?)\} %s;" % (cname, cname), header, re.S)
    if not m:
        problem(f"parley.h: no typedef enum {cname}")
        continue
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    values = {}
    for name, value in re.findall(r"\b(PARLEY_\w+)\s*=\s*(-?\d+)", body):
        if name == "PARLEY_OK":
            continue
        if not name.startswith(prefix):
            problem(f"parley.h: {name} in {cname} lacks the prefix {prefix}")
            continue
        values[name[len(prefix):]] = int(value)
    enums[tname] = values
errors = enums.get("ErrorCode", {})

version = tuple(int(re.search(r"#define PARLEY_VERSION_%s (\d+)" % part, header).group(1))
                for part in ("MAJOR", "MINOR", "PATCH"))
version_text = "%d.%d.%d" % version
if f'#define PARLEY_VERSION_STRING "{version_text}"' not in header:
    problem("parley.h: PARLEY_VERSION_STRING is not MAJOR.MINOR.PATCH")

# ---- the error table ----------------------------------------------------------------------
table = {}
descriptions = {}
for name, _camel, number, text in re.findall(
        r'X\((\w+), (\w+), (-\d+), "((?:[^"\\]|\\.)*)"\)', read("src/base/error_table.h")):
    table[name] = int(number)
    descriptions[int(number)] = text.replace('\\"', '"')
if table != errors:
    problem("error_table.h and parley.h disagree: only in the table %s; only in the header %s;"
            " numbered differently %s" % (
                sorted(set(table) - set(errors)), sorted(set(errors) - set(table)),
                sorted(n for n in set(table) & set(errors) if table[n] != errors[n])))
if len(set(table.values())) != len(table):
    problem("error_table.h: a number is used twice")


def compare(where, mirrored, expected, extras=()):
    """`mirrored` {NAME: value} must be `expected`, give or take the allowed `extras`."""
    mirrored = {k: v for k, v in mirrored.items() if k not in extras}
    missing = sorted(set(expected) - set(mirrored))
    extra = sorted(set(mirrored) - set(expected))
    wrong = sorted(n for n in set(expected) & set(mirrored) if expected[n] != mirrored[n])
    if missing or extra or wrong:
        problem(f"{where}: missing {missing}, not in the header {extra}, "
                f"numbered differently {[(n, mirrored[n], expected[n]) for n in wrong]}")


def camel(name):  # INCOMING_CALL -> incomingCall
    head, *rest = name.lower().split("_")
    return head + "".join(w.capitalize() for w in rest)


# ---- the library --------------------------------------------------------------------------
lib = ctypes.CDLL(LIB)
for fn in ("parley_error_name", "parley_strerror", "parley_event_type_name",
           "parley_version_string"):
    getattr(lib, fn).restype = ctypes.c_char_p
lib.parley_version.restype = ctypes.c_uint32
for name, number in errors.items():
    got = lib.parley_error_name(number).decode()
    if got != "PARLEY_ERR_" + name:
        problem(f"parley_error_name({number}) = {got!r}, the header says PARLEY_ERR_{name}")
    text = lib.parley_strerror(number).decode()
    if text != descriptions.get(number) or text == "unknown error":
        problem(f"parley_strerror({number}) = {text!r}")
if lib.parley_error_name(0).decode() != "PARLEY_OK":
    problem("parley_error_name(0) is not PARLEY_OK")
unused = min(errors.values()) - 1
if lib.parley_error_name(unused).decode() != "unknown":
    problem(f"parley_error_name({unused}) is not 'unknown'")
for name, number in enums.get("EventType", {}).items():
    got = lib.parley_event_type_name(number).decode()
    if got != "PARLEY_EVENT_" + name:
        problem(f"parley_event_type_name({number}) = {got!r}")
if lib.parley_event_type_name(max(enums["EventType"].values()) + 1).decode() != "unknown":
    problem("parley_event_type_name of a number past the last type is not 'unknown'")
if lib.parley_version_string().decode() != version_text:
    problem(f"the library says {lib.parley_version_string().decode()}, the header {version_text}")
if lib.parley_version() != (version[0] << 16 | version[1] << 8 | version[2]):
    problem("parley_version() is not the header's PARLEY_VERSION_NUM")

m = re.search(r"project\(parley\s+VERSION (\d+\.\d+\.\d+)", read("CMakeLists.txt"))
if not m or m.group(1) != version_text:
    problem(f"CMakeLists.txt's project VERSION is not {version_text}")

# ---- Python -------------------------------------------------------------------------------
spec = importlib.util.spec_from_file_location(
    "parley_enums", SRC / "bindings/python/parley/_enums.py")
py = importlib.util.module_from_spec(spec)
spec.loader.exec_module(py)
for tname, values in enums.items():
    cls = getattr(py, tname, None)
    if cls is None:
        problem(f"Python: no {tname}")
        continue
    compare(f"Python {tname}", {m.name: int(m.value) for m in cls}, values, extras=("OK", "NONE")
            if tname in ("ErrorCode", "QualityReason") else ())
if (py.VERSION_MAJOR, py.VERSION_MINOR, py.VERSION_PATCH) != version:
    problem("Python: _enums.VERSION_* is not the header's version")
for rel, pattern in (("bindings/python/parley/__init__.py", r'__version__ = "([\d.]+)"'),
                     ("bindings/python/pyproject.toml", r'^version = "([\d.]+)"'),
                     ("bindings/swift/run-tests.sh", r"Version: ([\d.]+)")):
    m = re.search(pattern, read(rel), re.M)
    if not m or m.group(1) != version_text:
        problem(f"{rel}: version {m.group(1) if m else None}, the header {version_text}")

# ---- Java ---------------------------------------------------------------------------------
JAVA = "bindings/java/src/main/java/org/parley/"
java_errors = dict((n, int(v)) for n, v in re.findall(
    r"public static final int (\w+) = (-\d+);", read(JAVA + "ParleyException.java")))
compare("Java ParleyException", java_errors, errors)
java_events = dict((n, int(v)) for n, v in re.findall(
    r"static final int EVENT_(\w+) = (\d+);", read(JAVA + "Context.java")))
# Context names the types it handles; each must be the header's.
compare("Java Context.EVENT_*", java_events,
        {k: v for k, v in enums["EventType"].items() if k in java_events})
for tname in ("QualityMode", "QualityReason", "CallState", "RelayState", "Origin", "Path"):
    path = SRC / (JAVA + tname + ".java")
    if not path.exists():
        problem(f"Java: no {tname}.java")
        continue
    body = path.read_text()
    constants = dict((n, int(v)) for n, v in re.findall(r"^\s+([A-Z_]+)\((-?\d+)\)[,;]", body,
                                                        re.M))
    compare(f"Java {tname}", constants, enums[tname], extras=("NONE", "UNKNOWN"))

# ---- Swift --------------------------------------------------------------------------------
SWIFT = "bindings/swift/Sources/Parley/"
swift_errors = dict((n.strip("`"), int(v)) for n, v in re.findall(
    r"case (`?\w+`?) = (-\d+)", read(SWIFT + "ParleyError.swift")))
compare("Swift ParleyError", swift_errors, {camel(k): v for k, v in errors.items()})
types = read(SWIFT + "Types.swift")
for block in re.finditer(r"public enum (\w+)\b.*?\n\}", types, re.S):
    tname = block.group(1)
    if tname not in enums:
        continue
    cases = dict((n, int(v)) for v, n in re.findall(r"case (-?\d+): self = \.(\w+)",
                                                    block.group(0)))
    compare(f"Swift {tname}", cases, {camel(k): v for k, v in enums[tname].items()},
            extras=("none",))

if problems:
    print("drift between the header and what mirrors it:")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print(f"{len(errors)} error codes, {sum(len(v) for v in enums.values()) - len(errors)} other "
      f"enumerators and version {version_text}: the header, the error table, libparley and "
      "the Python, Java and Swift tables agree")
