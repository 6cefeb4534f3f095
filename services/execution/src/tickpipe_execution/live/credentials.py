"""Exchange credentials, held as `SecretStr`: never in a repr, log line or error message.

Sources, first found wins, per field: the variable itself (`TICKPIPE_EXECUTION_API_KEY`),
a secret file named by `<VAR>_FILE` (Kubernetes/Docker secrets), or an encrypted keyfile
(`TICKPIPE_EXECUTION_KEYFILE`, AES-256-GCM) whose key comes from
`TICKPIPE_EXECUTION_KEYFILE_KEY` or `TICKPIPE_EXECUTION_KEYFILE_KEY_FILE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from tickpipe_execution.live.keyfile import KeyfileError, decode_key, read_keyfile

PREFIX = "TICKPIPE_EXECUTION_"
FIELDS = ("api_key", "api_secret", "api_password")


class CredentialsError(RuntimeError):
    """A configuration problem; the message names variables and files, never values."""


class Credentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    api_secret: SecretStr
    api_password: SecretStr | None = None

    def ccxt_config(self) -> dict[str, str]:
        config = {
            "apiKey": self.api_key.get_secret_value(),
            "secret": self.api_secret.get_secret_value(),
        }
        if self.api_password is not None:
            config["password"] = self.api_password.get_secret_value()
        return config


def _from_file(var: str, env: Mapping[str, str]) -> str | None:
    path = env.get(f"{var}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {var}_FILE ({type(exc).__name__})") from None


def load_credentials(env: Mapping[str, str]) -> Credentials:
    """Credentials from an environment mapping (the composition root passes os.environ)."""
    found: dict[str, str] = {}
    keyfile = env.get(f"{PREFIX}KEYFILE")
    if keyfile:
        key_var = f"{PREFIX}KEYFILE_KEY"
        raw_key = env.get(key_var) or _from_file(key_var, env)
        if not raw_key:
            raise CredentialsError(f"{keyfile}: set {key_var} or {key_var}_FILE to decrypt it")
        try:
            found.update(read_keyfile(Path(keyfile), decode_key(raw_key)))
        except KeyfileError as exc:
            raise CredentialsError(str(exc)) from None
    for name in FIELDS:
        var = f"{PREFIX}{name.upper()}"
        value = env.get(var) or _from_file(var, env)
        if value:
            found[name] = value
    missing = [f"{PREFIX}{n.upper()}" for n in FIELDS[:2] if not found.get(n)]
    if missing:
        raise CredentialsError(f"live mode needs credentials: {', '.join(missing)} not set")
    return Credentials(**{k: SecretStr(v) for k, v in found.items() if k in FIELDS})
