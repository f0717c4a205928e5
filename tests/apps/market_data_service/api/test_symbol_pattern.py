"""The ticker pattern the OpenAPI document states is exactly the rule the server applies.

``SYMBOL_PATTERN`` (the document's ``pattern`` for one symbol) must match a text if and
only if :func:`~libs.market_data.symbols.normalize_symbol` accepts it: schemathesis's
"schema-valid input accepted" check relies on it (``test_api_fuzz.py``).

Not in ``test_api_fuzz.py`` on purpose: Hypothesis requires the global ``random`` state
to be unchanged across each draw, and that module's module-scoped service runs in a
background thread until the module's last test is done; its websocket keepalive pings
draw from ``random``, and a ping landing mid-draw made Hypothesis blame this test's
strategy (``HypothesisDeprecationWarning``). No service runs while this module's test does.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.market_data_service.api.schemas import SYMBOL_PATTERN
from libs.market_data import InvalidSymbolError, normalize_symbol


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=30),
        st.from_regex(SYMBOL_PATTERN),
        st.text(st.sampled_from("aZ09./ \t\n\x0b\x1c\u3000\u0131\u017f-_"), max_size=24),
    )
)
def test_symbol_pattern_matches_exactly_what_normalize_symbol_accepts(text: str) -> None:
    try:
        normalize_symbol(text)
        accepted = True
    except InvalidSymbolError:
        accepted = False
    # JSON Schema's "$" is the end of the text; Python's also matches before a final "\n".
    core = SYMBOL_PATTERN.removeprefix("^").removesuffix("$")
    assert (re.fullmatch(core, text) is not None) == accepted, repr(text)
