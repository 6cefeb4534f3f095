"""`tickpipe train`, contributed to the tickpipe CLI through an entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tickpipe.cli import SAMPLE, missing_data


def _train(args: argparse.Namespace) -> int:
    from tickpipe_inference.training import TrainConfig, train

    if problem := missing_data("train", [args.data]):
        print(problem, file=sys.stderr)
        return 2

    out = train(
        TrainConfig(
            data=args.data,
            out_dir=args.registry,
            name=args.name,
            version=args.version,
            horizon_bars=args.horizon,
        )
    )
    print(f"model written to {out}")
    print((out / "card.json").read_text())
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train, export to ONNX (fp32, int8, Triton layout) and register a model"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=SAMPLE,
        help=f"the market data to fit on (default: {SAMPLE})",
    )
    p.add_argument(
        "--registry", type=Path, default=Path("models"), help="model registry folder (models)"
    )
    p.add_argument("--name", default="baseline", help="model (strategy) name (baseline)")
    p.add_argument("--version", default="v1", help="version: written to REGISTRY/NAME/VERSION (v1)")
    p.add_argument(
        "--horizon",
        type=int,
        default=5,
        help="label: the sign of the return this many bars ahead (5)",
    )
    p.set_defaults(func=_train)
