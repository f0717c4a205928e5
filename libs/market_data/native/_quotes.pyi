from collections.abc import Callable, Collection

class QuoteBlock:
    """A frame of plain stock quotes, parsed in C."""

    @property
    def data(self) -> bytes: ...
    @property
    def others(self) -> list[bytes]: ...
    def __len__(self) -> int: ...
    def process(
        self,
        subscribed: Collection[str],
        wildcard: bool,
        seqs: dict[str, int],
        instants: dict[str, str],
        epoch_json: bytes,
        instant_key: Callable[[str], str],
        /,
    ) -> tuple[list[tuple[str, bytes, bytes]], dict[str, int], tuple[int, int, int, int, int]]: ...

def scan(data: bytes, max_price: int, /) -> QuoteBlock | None: ...
