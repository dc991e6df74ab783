"""Keeping credentials out of every text the client produces: messages, bodies, logs.

A long secret is replaced wherever it appears. A short one (a local
server's key may be one character) only where it stands alone, so that
redacting it does not mangle every word that happens to contain it.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

_SHORT: Final = 8
_MASK: Final = "***"
_LEARNED: Final = 16
"""Fresh tokens kept for redaction: a provider may issue one per request, for ever."""


class Redactor:
    """Replaces a client's secrets with `***`; learns new ones (fresh tokens) as they come."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._static = {secret for secret in secrets if secret}
        self._learned: deque[str] = deque(maxlen=_LEARNED)
        self._long: tuple[str, ...] = ()
        self._short: re.Pattern[str] | None = None
        self._compile()

    def add(self, secret: str) -> None:
        """Redact `secret` from now on (a credential of the client's own)."""
        if secret and secret not in self._static:
            self._static.add(secret)
            self._compile()

    def learn(self, token: str) -> None:
        """Redact a freshly issued token too, among the most recent few."""
        if token and token not in self._static and token not in self._learned:
            self._learned.append(token)
            self._compile()

    def _compile(self) -> None:
        secrets = sorted({*self._static, *self._learned}, key=len, reverse=True)
        self._long = tuple(secret for secret in secrets if len(secret) >= _SHORT)
        shorts = [secret for secret in secrets if len(secret) < _SHORT]
        alternatives = "|".join(re.escape(secret) for secret in shorts)
        self._short = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])") if shorts else None

    def text(self, text: str) -> str:
        """`text` with every secret replaced."""
        for secret in self._long:
            text = text.replace(secret, _MASK)
        if self._short is not None:
            text = self._short.sub(_MASK, text)
        return text

    def value(self, value: object) -> object:
        """A decoded JSON value with secrets replaced in every string, keys included.

        Walks with an explicit stack (the value may be nested as deep as the
        decoder allows) and rewrites the freshly decoded containers in place.
        """
        if isinstance(value, str):
            return self.text(value)
        pending: list[object] = [value]
        while pending:
            container = pending.pop()
            if isinstance(container, list):
                for index, item in enumerate(container):
                    if isinstance(item, str):
                        container[index] = self.text(item)
                    elif isinstance(item, dict | list):
                        pending.append(item)
            elif isinstance(container, dict):
                for key, item in list(container.items()):
                    if isinstance(item, str):
                        item = self.text(item)  # noqa: PLW2901 - the redacted value replaces it
                    elif isinstance(item, dict | list):
                        pending.append(item)
                    clean = self.text(key) if isinstance(key, str) else key
                    if clean != key:
                        del container[key]
                    container[clean] = item
        return value
