"""Piccolo Admin in a real headless Chromium against the real server process.

`python server.py` serves the test database; an admin login made with
`piccolo user create` signs in through the admin's own form, opens the
documents table and sees two users' documents. A screenshot of that page is
written to the test's tmp directory; to refresh the tracked copy the README
shows, docs/admin-documents.png, run with CENTRID_TEST_UPDATE_SCREENSHOT=1
(so a plain `scripts/test` leaves the tree clean).

Needs Debian's `chromium` at /usr/bin/chromium and the `playwright` Python
package (dev extra). Playwright never downloads a browser here: it drives
the system one through `executable_path`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET, MigratedDB
from tests.support import REPO, create_user, run_piccolo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = REPO / "docs" / "admin-documents.png"
UPDATE_SCREENSHOT = "CENTRID_TEST_UPDATE_SCREENSHOT"
USERNAME = "browser-admin"
PASSWORD = "a-long-browser-password"

NO_BROWSER: str | None = None
if not CHROMIUM.exists():
    NO_BROWSER = f"{CHROMIUM} is absent (apt-get install -y chromium)"
try:
    from playwright.async_api import async_playwright
except ImportError as exc:  # pragma: no cover - depends on the environment
    NO_BROWSER = NO_BROWSER or f"playwright is not importable ({exc}); pip install -e '.[dev]'"
needs_browser = pytest.mark.skipif(NO_BROWSER is not None, reason=NO_BROWSER or "")


def screenshot_path(tmp_path: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """The tracked docs/ copy only when asked for; otherwise the test's own tmp dir."""
    if environ.get(UPDATE_SCREENSHOT, "").strip() == "1":
        return DOCS_SCREENSHOT
    return tmp_path / "admin-documents.png"


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_the_screenshot_leaves_the_tree_alone_unless_asked(tmp_path: Path) -> None:
    """Runs without a browser: where the browser test below writes."""
    for environ in ({}, {UPDATE_SCREENSHOT: ""}, {UPDATE_SCREENSHOT: "0"}):
        path = screenshot_path(tmp_path, environ)
        assert path.is_relative_to(tmp_path) and not path.resolve().is_relative_to(REPO), (environ, path)
    assert screenshot_path(tmp_path, {UPDATE_SCREENSHOT: "1"}) == DOCS_SCREENSHOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


async def wait_until_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            if server.process.poll() is not None:
                raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log.read_text()}")
            try:
                if (await http.get(f"{server.url}/health", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"server not healthy after {timeout}s:\n{server.log.read_text()}")
            await asyncio.sleep(0.2)


@pytest.fixture
async def server(db: MigratedDB, tmp_path: Path) -> AsyncIterator[Server]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": db.dsn,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "CENTRID_AUTO_MIGRATE": "0",
        "CENTRID_JWT_SECRET": TEST_JWT_SECRET,
        "CENTRID_DATA_DIR": str(tmp_path),
        "CENTRID_ADMIN_SECURE_COOKIES": "0",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "server.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    running = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        await wait_until_healthy(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@needs_browser
async def test_admin_lists_documents_in_a_real_browser(db: MigratedDB, server: Server, tmp_path: Path) -> None:
    created = run_piccolo(
        [
            "user",
            "create",
            f"--username={USERNAME}",
            f"--password={PASSWORD}",
            "--email=browser-admin@example.test",
            "--is_admin=True",
            "--is_superuser=True",
            "--is_active=True",
        ],
        db.dsn,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    tracked_before = _digest(DOCS_SCREENSHOT)
    filenames = {"alice-quarterly-report.pdf": "Alice", "bob-meeting-notes.txt": "Bob"}
    owners = []
    for filename, name in filenames.items():
        uid = await create_user(db.owner, name=name)
        owners.append(uid)
        await db.owner.execute(
            "INSERT INTO documents (user_id, filename, file_type, file_size, processing_status) "
            "VALUES ($1, $2, 'text/plain', 1234, 'completed')",
            uid,
            filename,
        )

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1600, "height": 900})
        broken: list[str] = []
        page.on("requestfailed", lambda r: broken.append(f"{r.method} {r.url}"))
        page.on("response", lambda r: broken.append(f"{r.status} {r.url}") if r.status >= 500 else None)
        try:
            # A wrong password is refused in the form (in a context of its own).
            refused = await browser.new_page()
            await refused.goto(f"{server.url}/admin/")
            await refused.locator("input[name=username]").fill(USERNAME)
            await refused.locator("input[name=password]").fill("not-the-password")
            await refused.locator("[data-uitest=login_button]").click()
            await refused.get_by_text("Problem logging in").wait_for(timeout=20_000)
            await refused.close()

            await page.goto(f"{server.url}/admin/")
            await page.locator("input[name=username]").fill(USERNAME)
            await page.locator("input[name=password]").fill(PASSWORD)
            await page.locator("[data-uitest=login_button]").click()

            # Logged in: the sidebar lists the tables; open documents from it.
            link = page.locator("a[href='#/documents/']")
            await link.wait_for(timeout=20_000)
            await link.click()
            await page.wait_for_url("**/admin/#/documents/**")

            # Both users' documents in the rendered table, with their owners.
            for filename in filenames:
                await page.get_by_text(filename, exact=True).wait_for(timeout=20_000)
            rendered = await page.locator("table", has_text="alice-quarterly-report.pdf").inner_text()
            for filename in filenames:
                assert filename in rendered
            for uid in owners:
                assert uid in rendered
            assert rendered.count("completed") == 2

            shot = screenshot_path(tmp_path)
            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot))
            assert shot.stat().st_size > 0
            if shot != DOCS_SCREENSHOT:
                assert _digest(DOCS_SCREENSHOT) == tracked_before, "the tracked screenshot was rewritten"
            assert not broken, broken
        except BaseException:
            await page.screenshot(path=str(tmp_path / "failure.png"))
            (tmp_path / "failure.html").write_text(await page.content())
            print(f"browser state kept in {tmp_path} (failure.png, failure.html, server.log); broken: {broken}")
            raise
        finally:
            await browser.close()
