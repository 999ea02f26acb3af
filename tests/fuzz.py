"""What the property-based tests (hypothesis) share: their bounds and their checks.

Bounded for the suite (each fuzz file in well under 30 s); run longer by hand with
``PYCONT_FUZZ_EXAMPLES=20000 pytest tests/unit/test_fuzz_*.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PYCONT_FUZZ_EXAMPLES", "150"))
# No example database: nothing is written into the repository (.hypothesis/).
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def one_line(err: BaseException) -> None:
    """A user's error is one line: the message names what was wrong and what is accepted."""
    text = str(err)
    assert text and "\n" not in text and "\r" not in text, f"not one line: {text!r}"


def biased_text(extra: str = "", max_size: int = 40) -> st.SearchStrategy[str]:
    """Text biased towards what the parsers look at: digits, units, separators, quotes."""
    alphabet = st.one_of(
        st.sampled_from(list("0123456789-.:/@_,=[]kmgtpbiKMGTPBI" + extra)),
        st.characters(codec="utf-8"),
    )
    return st.text(alphabet, max_size=max_size)
