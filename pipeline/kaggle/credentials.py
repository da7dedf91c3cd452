"""Kaggle credentials: where the official client will find them, and a clear message when it will not.

Read here, before the client is imported, because the client's own answer to missing credentials
is to print help and exit the process. Reading credentials never talks to Kaggle; the secret is
kept only so that pipeline.kaggle.api can scrub it from every message.
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

TOKEN_HELP = "kaggle.com -> Settings -> API -> Create New Token"


@dataclass(frozen=True)
class Credentials:
    username: str  # "" for an access token: Kaggle tells the name when asked
    secret: str  # the key or token; kept only to scrub it from messages
    source: str  # where they came from, for messages


def config_dir() -> Path:
    """Where the client looks for kaggle.json (kaggle 2.2.4's rule)."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    legacy = Path.home() / ".kaggle"
    if legacy.exists() or not sys.platform.startswith("linux"):
        return legacy
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


def credentials() -> Credentials:
    """The credentials the client will use, or a UserError saying where to put them."""
    path = config_dir() / "kaggle.json"
    stored: dict[str, Any] = {}
    if path.is_file():
        _warn_if_readable(str(path), path.stat().st_mode & 0o777)
        try:
            stored = json.loads(path.read_text()) or {}
        except (OSError, ValueError):
            raise UserError(f"{path} is not valid JSON: download a new kaggle.json ({TOKEN_HELP})") from None
    user = os.environ.get("KAGGLE_USERNAME") or str(stored.get("username") or "")
    key = os.environ.get("KAGGLE_KEY") or str(stored.get("key") or "")
    if user and key:
        source = "KAGGLE_USERNAME/KAGGLE_KEY" if os.environ.get("KAGGLE_KEY") else str(path)
        return Credentials(user, key, source)
    token = _access_token()
    if token:
        return Credentials("", token, "the Kaggle access token")
    if path.is_file():
        raise UserError(f"{path} lacks 'username' or 'key': download a new kaggle.json ({TOKEN_HELP})")
    where = path if os.environ.get("KAGGLE_CONFIG_DIR") else "~/.kaggle/kaggle.json"
    raise UserError(f"no Kaggle credentials: put kaggle.json ({TOKEN_HELP}) at {where} and run "
                    f"`chmod 600 {where}`, or set KAGGLE_USERNAME and KAGGLE_KEY")


def _access_token() -> str:
    """A newer-style token (KAGGLE_API_TOKEN, a value or a file; or ~/.kaggle/access_token)."""
    value = os.environ.get("KAGGLE_API_TOKEN", "")
    candidates = [Path(value)] if value and Path(value).is_file() else []
    if value and not candidates:
        return value
    candidates += [Path.home() / ".kaggle" / "access_token", Path.home() / ".kaggle" / "access_token.txt"]
    for path in candidates:
        with contextlib.suppress(OSError):
            if token := path.read_text().strip():
                return token
    return ""


@functools.cache  # once per file and mode, however many calls a command makes
def _warn_if_readable(path: str, mode: int) -> None:
    if mode & 0o077:
        print(f"warning: {path} can be read by other users (mode {mode:o}); run: chmod 600 {path}",
              file=sys.stderr)

