"""Container HEALTHCHECK: GET /healthz on the service's HTTP port.

PID 1's command line says what runs. A service (`tickpipe run <service>`): its port is
`TICKPIPE_HTTP_PORT` or the default in the service's spec. The operator API (`tickpipe api`):
its own settings' port (`TICKPIPE_API_PORT`). A one-shot job (`tickpipe topics create`,
`tickpipe train`) serves no HTTP and is healthy while it runs.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path


def _command(cmdline: Path) -> list[str]:
    """`tickpipe`'s arguments in PID 1's command line (after the `tickpipe` script)."""
    try:
        argv = [a.decode(errors="replace") for a in cmdline.read_bytes().split(b"\0") if a]
    except OSError:
        return []
    for i, word in enumerate(argv):
        if Path(word).name == "tickpipe" or word == "tickpipe.cli":
            return argv[i + 1 :]
    return []


def port(cmdline: Path = Path("/proc/1/cmdline")) -> int | None:
    """The port to check, or None for a process that serves no HTTP."""
    command = _command(cmdline)
    if command[:1] == ["api"] and command[1:2] in ([], ["serve"]):
        from tickpipe_api.settings import ApiSettings

        return ApiSettings().port
    if command[:1] != ["run"] or len(command) < 2:
        return None
    if os.environ.get("TICKPIPE_HTTP_PORT"):
        return int(os.environ["TICKPIPE_HTTP_PORT"])
    from tickpipe.app import load_specs

    spec = load_specs().get(command[1])
    return spec.default_http_port if spec else None


def main(cmdline: Path = Path("/proc/1/cmdline")) -> int:
    checked = port(cmdline)
    if checked is None:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{checked}/healthz", timeout=3) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as exc:
        print(f"healthz on port {checked}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
