"""How this project calls the official `kaggle` client: signed in as the client chooses, every call retried
while Kaggle fails transiently, every other failure one line that says what to do, every secret scrubbed.

Why a wrapper rather than calling the client directly:
- `KaggleApi.authenticate()` prints its help and exits the process when it finds no credentials (and
  `import kaggle` tries it at import time, silently since 2.2.5), so our own check says where
  credentials go first; the client then signs in with what it finds, in its own order (credentials.py),
  once per command (`signed_in`), and says whose they are (`account`);
- the client retries almost nothing and words HTTP errors as it likes (a 401 on a kernel "blames a
  wrong slug"): here transient failures (5xx, 429, resets, timeouts) are retried with exponential
  backoff, and 401/403/404 stop at once with what they mean for this competition, Kaggle's own words
  kept. A push or a submission is retried only when the request cannot have reached Kaggle: never twice
  submitted;
- no secret appears in a message: every message we build is scrubbed of every token and key found.

The operations are in api.py (competitions and kernels) and datasets.py.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import urllib3

from ..engine.errors import UserError
from .credentials import TOKEN_HELP, Credentials, config_dir, credentials

T = TypeVar("T")
RULES_URL = "https://www.kaggle.com/competitions/{competition}/rules"


@dataclass(frozen=True)
class Retry:
    tries: int = 4
    delay_s: float = 2.0  # first pause; doubles after each failure
    max_delay_s: float = 60.0


RETRY = Retry()  # the default; callers with settings pass their own


class KaggleUnavailable(UserError):
    """Kaggle kept failing transiently after every retry: worth trying again later (a poll loop goes on)."""


class SessionCapReached(UserError):
    """Kaggle refused a push because the user's GPU sessions are all running: nothing was pushed, and the same
    push goes through once one of them ends."""


# How Kaggle words a push refused for the concurrent-session cap (KAGGLE.md: "Maximum batch GPU session count
# of 2 reached"), in the push response's error field.
SESSION_CAP = re.compile(r"maximum batch gpu session count", re.I)


@dataclass(frozen=True)
class Account:
    """Whose credentials the client signed in with, and where they lie (never the secret)."""

    username: str
    source: str


def account(retry: Retry | None = None) -> Account:
    """The account the client signs in as, by its own choice among the credentials found (an access token
    before kaggle.json); asks Kaggle only for a token (whose user it is)."""
    _, creds, api = signed_in(retry)
    return Account(api.config_values["username"], creds.source(api.config_values.get("auth_method", "")))


def username() -> str:
    """The Kaggle user name of the credentials the client signs in with."""
    return account().username


_SIGNED_IN: dict[tuple[object, ...], Any] = {}  # one signed-in client per command (and per environment)


def signed_in(retry: Retry | None = None) -> tuple[Retry, Credentials, Any]:
    """(retry, credentials, client) for a call: the client signed in once per process for these credentials
    and this endpoint, so that hours of polling never sign in again (with an access token each sign-in is
    one more request to Kaggle)."""
    retry, creds = retry or RETRY, credentials()
    where = (creds, str(config_dir()), os.environ.get("KAGGLE_API_ENDPOINT", ""),
             os.environ.get("KAGGLE_API_ENVIRONMENT", ""))
    if where not in _SIGNED_IN:
        _SIGNED_IN[where] = session(creds, retry)
    return retry, creds, _SIGNED_IN[where]


def session(creds: Credentials, retry: Retry) -> Any:
    """An authenticated KaggleApi that follows the environment as it is now."""
    # its import-time auth help and warnings: ours are clearer
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
    # KaggleApi fixes these when it is first imported; a long-lived process (or a test) may have changed them.
    api.config_dir = str(config_dir())
    api.config = str(config_dir() / "kaggle.json")
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []

    def sign_in() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                api.authenticate()
            except SystemExit:  # every credential found was refused (an expired token, no key beside it)
                raise UserError(f"Kaggle accepted none of the credentials in {creds.found}: "
                                f"create a new token ({TOKEN_HELP})") from None

    call("sign in to Kaggle", sign_in, creds, retry)
    return api


def call(action: str, fn: Callable[[], T], creds: Credentials, retry: Retry, idempotent: bool = True,
         competition: str = "gan-getting-started") -> T:
    """fn(), retried while it fails transiently; other failures become one-line UserErrors."""
    for attempt in range(1, retry.tries + 1):
        try:
            return fn()
        except UserError as exc:
            raise type(exc)(scrub(str(exc), creds)) from None
        except Exception as exc:
            code, said = http_error(exc)
            reason = f"HTTP {code}" if code is not None else type(exc).__name__
            if code is None and not isinstance(exc, NETWORK_ERRORS):
                if isinstance(exc, ValueError):  # the client's own validation of what we gave it
                    raise UserError(scrub(f"{action}: {exc}", creds)) from None
                raise  # a bug: keep its traceback
            if not _transient(exc, code, idempotent):
                refused = _refusal(action, code, reason, said, competition, creds)
                raise UserError(scrub(refused, creds)) from None
            if attempt == retry.tries:
                raise KaggleUnavailable(f"{action}: Kaggle still failing after {retry.tries} tries "
                                        f"({reason}); check your connection and try again later") from None
            delay = min(retry.delay_s * 2 ** (attempt - 1), retry.max_delay_s)
            if code == 429:
                delay = min(max(delay, _retry_after(exc)), retry.max_delay_s)
            print(f"{action}: {reason}; retrying in {delay:.0f}s (try {attempt + 1} of {retry.tries})",
                  file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def http_error(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, Kaggle's message) behind `exc`, also when the client re-raised it as a ValueError;
    (None, "") when no answer came. Kaggle answers an error with JSON {"code", "message"}."""
    seen = 0
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return int(response.status_code), _message(response)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None, ""


def _message(response: Any) -> str:
    """The first line of Kaggle's message in an error answer ("" when it has none)."""
    try:
        said = response.json().get("message") or ""
    except (AttributeError, ValueError, RuntimeError):  # not JSON, or not a dict
        return ""
    lines = str(said).strip().splitlines()
    return lines[0][:300] if lines else ""


NETWORK_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                  requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)


def _transient(exc: Exception, code: int | None, idempotent: bool) -> bool:
    """Worth retrying: always when Kaggle cannot have acted on the request, else only when repeating is
    harmless."""
    if code is not None:
        return code == 429 or (idempotent and code >= 500)  # 429: the request was not carried out
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, urllib3.exceptions.ProxyError):  # the proxy itself could not be reached
        reason = getattr(reason, "original_error", None)
    never_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(
        reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))
    return idempotent or never_sent


def _retry_after(exc: BaseException) -> float:
    try:
        return float(exc.response.headers.get("Retry-After", 0))  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return 0.0


def _refusal(action: str, code: int | None, reason: str, said: str, competition: str,
             creds: Credentials) -> str:
    """One line: what Kaggle refused, in its own words (`said`), and what to do about it."""
    if code is None or code >= 500:  # only a push or a submission gets here: repeating it could do it twice
        return (f"{action}: {reason} from Kaggle{f' ({said})' if said else ''}, so it may or may not have "
                "been done: check on kaggle.com before trying again")
    status = f"HTTP {code}: {said}" if said else f"HTTP {code}"
    if code == 401:
        return (f"{action}: Kaggle refused the credentials in {creds.found} ({status}): check them, or "
                f"create a new token ({TOKEN_HELP})")
    if code == 403:
        return (f"{action}: Kaggle refused access ({status}): accept the competition rules at "
                f"{RULES_URL.format(competition=competition)}, or check the kernel slug")
    if code == 404:
        return f"{action}: not found on Kaggle ({status}): check the competition name and the kernel slug"
    return f"{action}: Kaggle refused the request (HTTP {code}){f': {said}' if said else ''}"


def scrub(message: str, creds: Credentials) -> str:
    for secret in creds.secrets:
        message = message.replace(secret, "***")
    return message


LISTING_PAGES = 20  # pages of 100 entries: far more than a competition's or a dataset's top level holds


def pages(action: str, page: Callable[[str], Any], creds: Credentials, retry: Retry,
           **options: Any) -> Iterator[Any]:
    """Each answer of a listing Kaggle gives in pages (`page(token)`, "" for the first), up to LISTING_PAGES;
    an answer of None (nothing to list) ends it."""
    token = ""
    for _ in range(LISTING_PAGES):
        answer = call(action, functools.partial(page, token), creds, retry, **options)
        yield answer
        token = answer.next_page_token if answer is not None else ""
        if not token:
            return
