"""Requirements (`uv export` output, on stdin) whose markers hold in a tickpipe image.

`pip download` decides environment markers by the interpreter it runs on, but the wheelhouse is
for the image's CPython 3.11 on Linux, whose patch level is not known here. A requirement is
kept, without its marker, when its marker holds for some 3.11 patch level; the image's pip
decides the markers again when it installs from the original file.

    python target_requirements.py x86_64 < requirements.txt > download.txt
"""

from __future__ import annotations

import re
import sys

from packaging.markers import Marker

PATCH_LEVELS = ("3.11.0", "3.11.99")  # markers compare versions: the extremes cover the rest


def environments(machine: str) -> list[dict[str, str]]:
    base = {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "python_version": "3.11",
    }
    return [{**base, "python_full_version": v, "implementation_version": v} for v in PATCH_LEVELS]


def target(text: str, machine: str) -> str:
    kept = []
    # One requirement per block: `name==version ; marker \` then its `--hash=` lines.
    for block in re.split(r"\n(?=\S)", text.strip()):
        head, sep, hashes = block.partition(" \\\n")
        spec, _, marker = head.partition(" ; ")
        if spec.startswith("#"):
            continue
        if marker and not any(Marker(marker).evaluate(e) for e in environments(machine)):
            continue
        kept.append(spec + sep + hashes)
    return "\n".join(kept) + "\n"


if __name__ == "__main__":
    sys.stdout.write(target(sys.stdin.read(), sys.argv[1]))
