"""Time limits for the Hub calls of ``mucomp push`` / ``mucomp pull`` (and the app's Push).

huggingface_hub's HTTP client waits forever by default (its client has no timeout, and most of
its API calls pass none), so a Hub that accepts the connection and never answers would hang a
push or a pull. :func:`patient` installs, once per process, a client factory whose transport
gives every request a connect, read, write and pool timeout of :func:`hub_timeout` seconds
(``MUCOMP_HUB_TIMEOUT``, default :data:`DEFAULT_TIMEOUT_S`; a request's own shorter timeout is
kept). Inside ``with patient():`` a timeout raises :class:`HubNoAnswer` instead of the HTTP
library's timeout error, so huggingface_hub does not retry it five more times with back-off: the
caller says at once that the Hub did not answer. Elsewhere in the process (e.g. the reference
downloads of :mod:`mucomp.references`) the timeouts apply and huggingface_hub's own retries and
cache fallbacks work as they always did.

huggingface_hub 1.0 and later speak httpx (``httpx2`` in its newest releases); with an older one
nothing is installed and its own defaults apply.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import math
import os
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

#: Seconds a Hub call may wait to connect, or for the next bytes of an answer.
DEFAULT_TIMEOUT_S = 30.0
TIMEOUT_ENV = "MUCOMP_HUB_TIMEOUT"

_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("mucomp_hub_strict", default=False)
_INSTALL_LOCK = threading.Lock()
_installed = False


class HubNoAnswer(Exception):
    """The Hub accepted no connection, or sent nothing, within ``seconds`` (inside :func:`patient`)."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(f"no answer from {url} within {seconds:g} s")
        self.url, self.seconds = url, seconds


def hub_timeout() -> float:
    """Seconds a Hub call waits to connect or for the next bytes: ``MUCOMP_HUB_TIMEOUT`` when it is a
    positive number, else :data:`DEFAULT_TIMEOUT_S`. Read at each request, so a changed value counts."""
    try:
        seconds = float(os.environ.get(TIMEOUT_ENV, "").strip() or DEFAULT_TIMEOUT_S)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_TIMEOUT_S


def _httpx() -> Any | None:
    """The httpx package huggingface_hub's client is built on (None: an older, requests-based one)."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


@cache
def _classes(httpx: Any) -> tuple[type, type]:
    """``(transport, byte stream)`` classes of ``httpx`` that put the time limit on every request."""

    class Stream(httpx.SyncByteStream):
        """A response body whose read timeouts become :class:`HubNoAnswer` (strict requests only)."""

        def __init__(self, inner: Any, url: str, seconds: float) -> None:
            self.inner, self.url, self.seconds = inner, url, seconds

        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self.inner
            except httpx.TimeoutException as err:
                raise HubNoAnswer(self.url, self.seconds) from err

        def close(self) -> None:
            self.inner.close()

    class PatientTransport(httpx.BaseTransport):
        """Wraps a transport: every request gets :func:`hub_timeout` as its longest wait."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def handle_request(self, request: Any) -> Any:
            seconds = hub_timeout()
            limits = dict(request.extensions.get("timeout") or {})
            for key in ("connect", "read", "write", "pool"):
                given = limits.get(key)
                limits[key] = seconds if given is None else min(float(given), seconds)
            request.extensions = {**request.extensions, "timeout": limits}
            strict = _STRICT.get()
            try:
                response = self.inner.handle_request(request)
            except httpx.TimeoutException as err:
                if strict:
                    raise HubNoAnswer(f"{request.url.scheme}://{request.url.netloc.decode()}", seconds) from err
                raise
            if strict:
                response.stream = Stream(response.stream, f"{request.url.scheme}://{request.url.netloc.decode()}",
                                         seconds)
            return response

        def close(self) -> None:
            self.inner.close()

    return PatientTransport, Stream


def _patient_client() -> Any:
    """huggingface_hub's default client, its transports wrapped in the time limit."""
    from huggingface_hub.utils._http import default_client_factory

    client = default_client_factory()
    transport, _ = _classes(_httpx())
    client._transport = transport(client._transport)
    client._mounts = {pattern: None if inner is None else transport(inner) for pattern, inner in client._mounts.items()}
    return client


def install() -> bool:
    """Make huggingface_hub's client (process-wide, once) put :func:`hub_timeout` on every request;
    False when its client is not httpx-based (then nothing changes)."""
    global _installed
    if _installed:
        return True
    if _httpx() is None:
        return False
    try:
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils._http import default_client_factory  # noqa: F401 - needed by the factory
    except ImportError:
        return False
    with _INSTALL_LOCK:
        if not _installed:
            set_client_factory(_patient_client)
            _installed = True
    return True


@contextlib.contextmanager
def patient() -> Iterator[None]:
    """Hub calls made in this block (this thread) wait at most :func:`hub_timeout` seconds for a
    connection or the next bytes, and raise :class:`HubNoAnswer` after that, without retries."""
    install()
    token = _STRICT.set(True)
    try:
        yield
    finally:
        _STRICT.reset(token)
