"""CLI: python -m jaxmatte.convert --arch NAME --src FILE --out DIR [--in-channels N]."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import pathlib
import sys

from jaxmatte import atomic, cli
from jaxmatte.convert import io
from jaxmatte.registry import CONVERTERS

HASH_CHUNK = 1 << 20


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Converts one checkpoint with a registered converter and writes `save_variables` output."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxmatte.convert",
        description="Convert a PyTorch checkpoint (.safetensors/.npz, or .pth with torch) into a "
        "Flax variables directory for --config.init.from=DIR.",
    )
    parser.add_argument("--arch", help="converter name; --list shows them")
    parser.add_argument("--src", type=pathlib.Path, help="checkpoint file")
    parser.add_argument("--out", type=pathlib.Path, help="output directory")
    parser.add_argument("--in-channels", type=int, default=None, help="input channels (3/4/6)")
    parser.add_argument("--widen", default=None, help="first-layer widening: zero | copy")
    parser.add_argument("--list", action="store_true", help="list converter names and exit")
    cli.add_verbosity(parser)
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CONVERTERS.names()))
        return 0
    if not (args.arch and args.src and args.out):
        parser.error("--arch, --src and --out are required")
    if args.arch not in CONVERTERS:
        raise ValueError(
            f"--arch {args.arch}: unknown converter; known: {', '.join(CONVERTERS.names())}"
        )
    if not args.src.is_file():
        raise FileNotFoundError(f"--src {args.src}: no such file")
    atomic.check_folder(args.out)
    convert = CONVERTERS.get(args.arch)
    kwargs = {}
    if args.in_channels is not None:
        kwargs["in_channels"] = args.in_channels
    if args.widen is not None:
        kwargs["widen"] = args.widen
    accepted = inspect.signature(convert).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    for key in kwargs:
        if key not in accepted and not open_ended:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag}: converter {args.arch} takes no such option")
    state_dict = io.load_state_dict(args.src)
    try:
        variables = convert(state_dict, **kwargs)
    except ValueError as e:  # ConversionError lists every offending key.
        print(f"error: {args.src}: {e}", file=sys.stderr)
        return 1
    meta = {
        "arch": args.arch,
        "converter_kwargs": kwargs,
        "src": args.src.name,
        "src_sha256": _sha256(args.src),
    }
    io.save_variables(variables, args.out, meta)
    n = sum(v.size for v in io.flatten(variables).values())
    print(f"wrote {n} values from {args.src.name} to {args.out}")
    return 0


if __name__ == "__main__":
    cli.run(main)
