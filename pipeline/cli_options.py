"""`--cluster` with an optional value, without Click's deprecated flag_value trick.

`--cluster HOST:PORT` names a cluster; a bare `--cluster` (anywhere on the line,
before another option, before the stage argument or last) means "the configured
cluster": execution.address or RAY_ADDRESS.  The word after `--cluster` is taken
as its value only when it looks like an address (contains ':' as in HOST:PORT or
ray://HOST:PORT, or is `auto`); otherwise the flag is bare.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

CLUSTER_OPTION = "--cluster"
CLUSTER_AUTO = "auto"


def looks_like_address(value: str) -> bool:
    return not value.startswith("-") and (value == CLUSTER_AUTO or ":" in value)


def normalize_cluster_args(args: list[str]) -> list[str]:
    """Rewrite a bare --cluster as --cluster=auto, so Click sees an ordinary option with a value."""
    result: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            result.extend(args[index:])
            break
        if arg == CLUSTER_OPTION:
            following = args[index + 1] if index + 1 < len(args) else None
            if following is not None and looks_like_address(following):
                result.extend([arg, following])
                index += 2
                continue
            result.append(f"{CLUSTER_OPTION}={CLUSTER_AUTO}")
        elif arg == f"{CLUSTER_OPTION}=":
            result.append(f"{CLUSTER_OPTION}={CLUSTER_AUTO}")
        else:
            result.append(arg)
        index += 1
    return result


class ClusterOptionCommand(TyperCommand):
    """A command whose --cluster option may be given without a value."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_cluster_args(list(args)))
