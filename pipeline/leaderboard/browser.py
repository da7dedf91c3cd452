"""`make check-page`: the leaderboard page rendered by a real browser, every image on it loaded.

Headless Chromium opens the page from disk, runs it until it is idle, and prints the DOM as it then is;
the page's own script has by then marked every image `data-loaded="yes"` (decoded, with a size) or "no".
A file the page names but that is missing, unreadable or not an image fails the check, naming it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from ..engine.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TIMEOUT_S = 120


def find_browser() -> str:
    """$CHROME, else the first Chromium-like browser on PATH."""
    found = os.environ.get("CHROME") or next((b for b in map(shutil.which, BROWSERS) if b), None)
    if not found:
        raise UserError("no headless Chromium here to check the page with: install it (Debian/Ubuntu: "
                        "sudo apt-get install chromium) or set CHROME=/path/to/chrome")
    return found


class _Images(HTMLParser):
    """The body's data-images mark and every <img>'s src and data-loaded mark."""

    def __init__(self) -> None:
        super().__init__()
        self.marked: str | None = None
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "body":
            self.marked = values.get("data-images")
        elif tag == "img":
            self.images.append((values.get("src") or "", values.get("data-loaded") or ""))


def check_page(page: Path, browser: str | None = None) -> str:
    """Render `page` headless; a one-line summary when every image loaded, else a UserError naming those
    that did not."""
    browser = browser or find_browser()
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
               Path(page).resolve().as_uri()]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{page}: {browser} could not render it ({type(exc).__name__}: {exc})") from None
    dom = _Images()
    dom.feed(proc.stdout)
    if proc.returncode != 0 or dom.marked is None:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{page}: {browser} did not render the page or run its check script "
                        f"(exit {proc.returncode}: {last})")
    if not dom.images:
        raise UserError(f"{page}: the page shows no pictures to check; train or score a run first")
    broken = [src for src, loaded in dom.images if loaded != "yes"]
    if broken:
        raise UserError(f"{page}: {len(broken)} of {len(dom.images)} images did not load in {browser}: "
                        f"{', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}; "
                        "run make leaderboard again to rewrite the page and its files")
    return f"{page}: all {len(dom.images)} images loaded in headless {Path(browser).name}"
