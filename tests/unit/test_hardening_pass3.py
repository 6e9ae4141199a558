"""The pure parts of the third hostile run's fixes (issue 24): no server needed."""

from __future__ import annotations

from entrypoint.core.text import iso
from entrypoint.journal import MAX_WHEN


def test_the_latest_when_is_the_last_instant_a_date_can_show() -> None:
    """MAX_WHEN is 9999-12-31T23:59:59.999Z, and a row's bigint beyond any date is shown as its number."""
    assert iso(MAX_WHEN) == "9999-12-31T23:59:59.999Z"
    assert iso(2**53 - 1) == str(2**53 - 1)
    assert iso(-(2**62)) == str(-(2**62))
