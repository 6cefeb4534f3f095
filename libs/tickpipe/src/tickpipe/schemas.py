"""JSON Schemas generated from the event models, and the compatibility rule between versions.

Within one `.vN`, a new schema may only add optional fields; anything else (removing or
retyping a field, making one required, closing the content model) needs a new topic version.

The published schemas have an open content model (`additionalProperties: true`): a subscriber
validating with any released copy accepts the optional fields added after it. The models
themselves stay strict (`extra="forbid"`): that is how tickpipe's own services read, not part
of the public contract. See docs/schemas.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tickpipe.messages import EVENT_TYPES

_IGNORED = {"description", "title", "examples", "default"}

# Released sets published with a closed content model (`additionalProperties: false`) by
# mistake -> the set that corrects each: the same schemas, opened. A subscriber holding a copy
# of the first replaces it with the second (or today's schemas). docs/schemas.md.
ERRATA: dict[str, str] = {"v0.1.0": "v0.1.0.post1"}


def open_content_model(node: Any) -> Any:
    """`node` with every closed object (`additionalProperties: false`) opened (`true`).
    Maps (`additionalProperties: {schema}`) keep their value schema."""
    if isinstance(node, dict):
        return {
            k: True if k == "additionalProperties" and v is False else open_content_model(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [open_content_model(v) for v in node]
    return node


def generate() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every event type, with an open content model."""
    out: dict[str, dict[str, Any]] = {}
    for event_type, cls in sorted(EVENT_TYPES.items()):
        schema = open_content_model(cls.model_json_schema(mode="serialization"))
        schema["$id"] = f"https://tickpipe.dev/schemas/{event_type}.v{cls.schema_version}.json"
        out[f"{event_type}.v{cls.schema_version}.json"] = schema
    return out


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in generate().items():
        path = directory / name
        path.write_text(dump(schema))
        paths.append(path)
    return paths


def drift(directory: Path) -> list[str]:
    """Files whose checked-in content differs from what the models generate."""
    problems = []
    for name, schema in generate().items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing (run `tickpipe schemas generate`)")
        elif path.read_text() != dump(schema):
            problems.append(f"{name}: differs from the models (run `tickpipe schemas generate`)")
    return problems


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _IGNORED}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _resolve(schema: dict[str, Any], node: Any) -> Any:
    """Inline local `$ref`s so the comparison sees types, not definition names."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _resolve(schema, schema["$defs"][ref.removeprefix("#/$defs/")])
        return {k: _resolve(schema, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(schema, v) for v in node]
    return node


def _field(schema: dict[str, Any], prop: Any) -> Any:
    """A field's type, as compared: references inlined, docs dropped, nested objects opened
    (opening one is no change of type)."""
    return _strip(open_content_model(_resolve(schema, prop)))


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    old_required = set(old.get("required", []))
    new_required = set(new.get("required", []))
    for name, prop in old_props.items():
        if name not in new_props:
            problems.append(f"field {name!r} removed")
        elif _field(old, prop) != _field(new, new_props[name]):
            problems.append(f"field {name!r} changed type")
    for name in sorted(new_required - old_required):
        problems.append(
            f"field {name!r} is required now"
            if name in old_props
            else f"new field {name!r} is required (only optional fields may be added)"
        )
    old_extra, new_extra = _extra(old), _extra(new)
    if new_extra != old_extra and old_extra is not False and new_extra is not True:
        # Opening a closed model only accepts more; anything else refuses what was valid.
        problems.append("additionalProperties narrowed (the content model may only open)")
    return problems


def _extra(schema: dict[str, Any]) -> Any:
    """What `additionalProperties` allows: True (absent or true: anything), False, or a
    schema."""
    return schema.get("additionalProperties", True)


def check_against(released: Path) -> list[str]:
    """Compare the models' schemas with a released set (same file names = same versions)."""
    problems = []
    current = generate()
    for path in sorted(released.glob("*.json")):
        new = current.get(path.name)
        if new is None:
            problems.append(f"{path.name}: released schema no longer generated")
            continue
        old = json.loads(path.read_text())
        problems += [f"{path.name}: {p}" for p in incompatibilities(old, new)]
    return problems


def releases(released: Path) -> list[Path]:
    """The released sets under `released` (`schemas/released`), oldest first: by version
    number (`v0.1.0` < `v0.1.0.post1` < `v0.1.1` < `v0.10.0`), not by name."""
    return sorted(
        (p for p in released.iterdir() if p.is_dir()),
        key=lambda p: tuple(int(n) for n in re.findall(r"\d+", p.name)),
    )
