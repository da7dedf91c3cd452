"""Kaggle credentials: whether the official client will find any, and every secret to keep out of messages.

The client itself chooses which credential to use (kaggle 2.2.5, `KaggleApi.authenticate`): an access token
first (`KAGGLE_API_TOKEN`, a value or a file; else `~/.kaggle/access_token`), then kaggle.json's username and
key (`KAGGLE_USERNAME`/`KAGGLE_KEY` override the file), then the OAuth credentials of `kaggle auth login`.
This module never second-guesses that order. It only checks, before the client is imported, that some
credential is there, because the client's own answer to none is to print help and exit the process; and it
gathers every secret the client could send, so that pipeline.kaggle.api scrubs them all from every message.
Reading credentials never talks to Kaggle.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.errors import UserError

TOKEN_HELP = "kaggle.com -> Settings -> API -> Generate New Token"
TOKEN_FILE = "~/.kaggle/access_token"
LOGIN_FILE = "~/.kaggle/credentials.json"  # written by `kaggle auth login` (kagglesdk's KaggleCredentials)
# kagglesdk's names for where it found a token, as this project says them
TOKEN_SOURCES = {"access_token": TOKEN_FILE, "KAGGLE_API_V1_TOKEN": "the Kaggle notebook's token"}


@dataclass(frozen=True)
class Credentials:
    """What the client can sign in with, each kind where it lies ("" = absent), in the client's order."""

    token_at: str
    key_at: str
    login_at: str
    secrets: tuple[str, ...]  # every token and key found: kept only to scrub them from messages

    @property
    def found(self) -> str:
        """Every place holding credentials, in the order the client tries them (for messages)."""
        return ", ".join(place for place in (self.token_at, self.key_at, self.login_at) if place)

    def source(self, auth_method: str) -> str:
        """Where the credentials the client signed in with lie (`auth_method`: the client's AuthMethod)."""
        used = {"ACCESS_TOKEN": self.token_at, "LEGACY_API_KEY": self.key_at, "OAUTH": self.login_at}
        return used.get(auth_method) or self.found


def config_dir() -> Path:
    """Where the client looks for kaggle.json (kaggle 2.2.5's rule)."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    legacy = Path.home() / ".kaggle"
    if legacy.exists() or not sys.platform.startswith("linux"):
        return legacy
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


def credentials() -> Credentials:
    """The credentials the client can use, or a UserError saying where to put them."""
    token, token_at = _token()
    user, key, key_at = _api_key()
    login = _login()
    secrets = tuple(s for s in (token, key, *login.values()) if s)
    if token or (user and key) or login:
        return Credentials(token_at if token else "", key_at if user and key else "",
                           LOGIN_FILE if login else "", secrets)
    path = config_dir() / "kaggle.json"
    if path.is_file():
        raise UserError(f"{path} is not valid JSON or lacks 'username' or 'key': create a new token "
                        f"({TOKEN_HELP}) and save it as {TOKEN_FILE}")
    where = path if os.environ.get("KAGGLE_CONFIG_DIR") else "~/.kaggle/kaggle.json"
    raise UserError(f"no Kaggle credentials: create a token ({TOKEN_HELP}), save it as {TOKEN_FILE} and run "
                    f"`chmod 600 {TOKEN_FILE}` (or set KAGGLE_API_TOKEN); a kaggle.json at {where}, or "
                    "KAGGLE_USERNAME and KAGGLE_KEY, work too")


def _token() -> tuple[str, str]:
    """(access token, where it is), found by the client's own search (kagglesdk), or ("", "")."""
    from kagglesdk.kaggle_env import get_access_token_from_env

    token, where = get_access_token_from_env()
    if not token:
        return "", ""
    if where == "access_token":
        _warn_if_readable(*_mode(Path(TOKEN_FILE).expanduser()))
    return token, TOKEN_SOURCES.get(where, where)


def _api_key() -> tuple[str, str, str]:
    """(username, key, where the key is) as the client reads them: kaggle.json, then KAGGLE_* over it."""
    path = config_dir() / "kaggle.json"
    stored: dict[str, Any] = {}
    if path.is_file():
        _warn_if_readable(*_mode(path))
        with contextlib.suppress(OSError, ValueError):  # the client ignores a broken file too
            stored = json.loads(path.read_text()) or {}
    if not isinstance(stored, dict):
        stored = {}
    user = os.environ.get("KAGGLE_USERNAME") or str(stored.get("username") or "")
    key = os.environ.get("KAGGLE_KEY") or str(stored.get("key") or "")
    return user, key, "KAGGLE_USERNAME/KAGGLE_KEY" if os.environ.get("KAGGLE_KEY") else str(path)


def _login() -> dict[str, str]:
    """The secrets of `kaggle auth login` ({} without them): the client signs in with its refresh token."""
    with contextlib.suppress(OSError, ValueError):
        stored = json.loads(Path(LOGIN_FILE).expanduser().read_text())
        if isinstance(stored, dict) and stored.get("refresh_token"):
            return {name: str(stored.get(name) or "") for name in ("refresh_token", "access_token")}
    return {}


def _mode(path: Path) -> tuple[str, int]:
    try:
        return str(path), path.stat().st_mode & 0o777
    except OSError:
        return str(path), 0o600


@functools.cache  # once per file and mode, however many calls a command makes
def _warn_if_readable(path: str, mode: int) -> None:
    if mode & 0o077:
        print(f"warning: {path} can be read by other users (mode {mode:o}); run: chmod 600 {path}",
              file=sys.stderr)
