"""Compile the native hot path in place: ``python -m libs.market_data.native.build``.

``make setup`` runs this after installing the locked dependencies. It needs a C compiler
and Python's headers (both on the machines we run on: docs/architecture.md, "Native quote
path"); without them it says so and exits 0, and the service runs the Python path, which
gives the same results, slower.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Final

__all__ = ["MODULES", "build", "main", "target"]

_HERE = Path(__file__).resolve().parent
# Each is one C file beside this one, built into an extension module of the same name.
MODULES: Final = ("_quotes", "_packing")


def target(module: str) -> Path:
    """Where a compiled module goes: beside its source, named for this interpreter."""
    return _HERE / f"{module}{sysconfig.get_config_var('EXT_SUFFIX')}"


def build(module: str) -> Path:
    """Compile ``module``'s C file; raise :class:`RuntimeError` with the compiler's words."""
    compiler = os.environ.get("CC") or shlex.split(sysconfig.get_config_var("CC") or "cc")[0]
    include = sysconfig.get_paths()["include"]
    out = target(module)
    partial = out.with_suffix(".tmp")
    command = [
        compiler, "-O2", "-fPIC", "-shared", "-std=c11", "-Wall", "-Wextra",
        "-fvisibility=hidden", f"-I{include}", str(_HERE / f"{module}.c"), "-o", str(partial),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(f"no C compiler ({compiler}): {exc}") from exc
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stderr}")
    if done.stderr:
        print(done.stderr, file=sys.stderr)  # warnings: the build went through
    partial.replace(out)  # never a half-written module on the import path
    return out


def main() -> int:
    for module in MODULES:
        try:
            out = build(module)
        except RuntimeError as exc:
            print(f"native {module} not built, the Python path runs instead: {exc}")
            continue
        print(f"native {module} built: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
