"""``python -m sim.toolchain``: print the tool versions, the Verilator folder and the cache."""

from __future__ import annotations

from sim.toolchain.cache import cache_dir
from sim.toolchain.errors import ToolchainError
from sim.toolchain.tools import tool_versions, verilator_bin_dir


def main() -> None:
    """Print the tool versions, the Verilator folder and the cache folder (``python -m``)."""
    for name, version in tool_versions().items():
        print(f"{name:15} {version}")
    try:
        print(f"{'verilator bin':15} {verilator_bin_dir()}")
    except ToolchainError as error:
        print(f"{'verilator bin':15} {error}")
    print(f"{'cache':15} {cache_dir()}")


if __name__ == "__main__":
    main()
