"""`tickpipe keys`: create the encrypted keyfile live execution reads its credentials from.

tickpipe keys genkey                   # prints a new AES-256 key (store it as a secret)
tickpipe keys create --out keys.enc    # reads TICKPIPE_EXECUTION_KEYFILE_KEY[_FILE] and
                                       # the credentials from the environment or prompts
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tickpipe_execution.live.credentials import FIELDS, PREFIX
from tickpipe_execution.live.keyfile import KeyfileError, decode_key, new_key, write_keyfile


def create_keyfile(
    out: Path,
    env: Mapping[str, str],
    prompt: Callable[[str], str] = getpass.getpass,
) -> None:
    """Seal the credentials found in `env` (or typed at hidden prompts) into `out`."""
    key_var = f"{PREFIX}KEYFILE_KEY"
    raw_key = env.get(key_var)
    if not raw_key and env.get(f"{key_var}_FILE"):
        raw_key = Path(env[f"{key_var}_FILE"]).read_text()
    if not raw_key:
        raise KeyfileError(f"set {key_var} or {key_var}_FILE (see `tickpipe keys genkey`)")
    fields: dict[str, str] = {}
    for name in FIELDS:
        value = env.get(f"{PREFIX}{name.upper()}")
        if not value and name != "api_password":
            value = prompt(f"{name}: ")
        if value:
            fields[name] = value
    write_keyfile(out, fields, decode_key(raw_key))


def _genkey(_: argparse.Namespace) -> int:
    print(new_key())
    return 0


def _create(args: argparse.Namespace) -> int:
    try:
        create_keyfile(args.out, os.environ)
    except KeyfileError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 2
    print(f"keyfile written to {args.out} (mode 600)")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="encrypted exchange credentials for live execution")
    keys = p.add_subparsers(dest="keys_command", required=True)
    keys.add_parser("genkey", help="print a new AES-256-GCM key").set_defaults(func=_genkey)
    create = keys.add_parser("create", help="write an encrypted keyfile")
    create.add_argument("--out", type=Path, required=True, help="the keyfile to write (mode 600)")
    create.set_defaults(func=_create)
