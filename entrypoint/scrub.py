"""Masking the secrets in a text: where a password stands in a connection string, and anywhere once it is long.

The log pipeline (`logs`) masks every `Untrusted` value with the scrubber `install`
made; `scrub` does the same for code that must cut a text before it is logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

# Below this length a secret is masked only where a password stands in a connection string (a URL's userinfo,
# `?password=`, a key=value `password=`): masking every occurrence of `e` or `1` would rewrite libpq's own text
# (`conn***ction`, `***27.0.0.***`) and so give the secret away. Longer ones are masked wherever they appear.
SUBSTRING_MIN = 8
# Where a password stands: (what comes before it, the password).
_PASSWORD_SLOTS = (
    re.compile(r"([a-z][a-z0-9+.-]*://[^/@:\s]*:)([^@/\s]*)(?=@)", re.IGNORECASE),
    re.compile(r"([?&]password=)([^&#\s]*)", re.IGNORECASE),
    re.compile(r"((?:^|\s)password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE),
)


class Scrubber:
    """Masks the secrets in a text: by position where a password stands, and anywhere once they are long."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {s for s in secrets if s}
        self._forms = found | {unquote(s) for s in found}
        self._anywhere = sorted((s for s in found if len(s) >= SUBSTRING_MIN), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` with each secret replaced by `***`."""
        for slot in _PASSWORD_SLOTS:
            text = slot.sub(self._mask_slot, text)
        for secret in self._anywhere:
            text = text.replace(secret, "***")
        return text

    def _mask_slot(self, match: re.Match[str]) -> str:
        value = match.group(2)
        bare = value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value
        return match.group(1) + ("***" if bare in self._forms or unquote(bare) in self._forms else value)


_SCRUB = Scrubber(())


def install(secrets: Iterable[str]) -> Scrubber:
    """Make `secrets` the ones masked from now on (the log pipeline's, and `scrub`'s); the scrubber."""
    global _SCRUB  # noqa: PLW0603 - one pipeline per process, as structlog's own configuration is
    _SCRUB = Scrubber(secrets)
    return _SCRUB


def scrub(text: str) -> str:
    """`text` with the configured secrets masked, as the log pipeline masks `Untrusted` values.

    For code that must cut a text before it is logged (another session's query): scrub first, then cut,
    so a secret split by the cut is still recognised.
    """
    return _SCRUB(text)
