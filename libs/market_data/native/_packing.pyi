from collections.abc import Callable

def pack(
    updates: list[tuple[str, bytes, bytes]],
    names: dict[str, tuple[bytes, bytes]],
    missing: Callable[[str], tuple[bytes, bytes]],
    set_suffix: bytes,
    latest: dict[str, tuple[str, bytes, bytes]],
    /,
) -> tuple[bytes, bytes, list[tuple[str, bytes, bytes]]]: ...
