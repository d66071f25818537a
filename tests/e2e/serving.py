"""The real app for browser tests and benches: `streamlit run` on a free loopback port with
a data folder of its own, waited on through /_stcore/health, and Debian's Chromium driven
by Playwright. Used by tests/e2e/ and bench/app_vs_bench.py.

A missing browser fails (CI installs Chromium); it is never skipped silently.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    """A free port in 20000-30000 on the loopback address (the range this project's
    helpers may use; never the lead's 8501)."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-30000")


def healthy(url: str, proc: subprocess.Popen) -> bool:
    """True once the server answers ok on /_stcore/health; raises if it has exited."""
    if proc.poll() is not None:
        raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read()}")
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().strip() == b"ok"
    except OSError:
        return False


@contextmanager
def start_server(
    env: dict[str, str], port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app/streamlit_app.py` with os.environ updated by `env` (at least
    RESNET_EXPLORER_DATA); yields (url, process) once healthy, and stops it on exit."""
    port = port or free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    command += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url, proc), timeout=90, what=f"{url}/_stcore/health", every=0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def launch(playwright):
    """Headless Chromium through Playwright; fails (never skips) when it is missing."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(
            f"Chromium is not at {CHROMIUM}: install it with `apt-get install -y "
            "chromium` (or set CHROMIUM to its path); the browser tests need it"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@contextmanager
def browser_page(timeout_ms: int = 60_000, **page_args) -> Iterator:
    """One page of a fresh Chromium (page_args go to new_page: viewport, locale)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(**page_args)
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def start_training(page, epochs: str = "30") -> None:
    """Open the Train page and start a run on its defaults, `epochs` long."""
    page.get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Train").wait_for()
    box = page.get_by_label("Epochs")
    box.fill(epochs)
    box.press("Tab")
    page.get_by_role("button", name="Start training").click()
