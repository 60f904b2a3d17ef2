"""Piccolo Admin in a real headless Chromium against the real server process.

`python server.py` serves the test database; an admin login made with
`piccolo user create` signs in through the admin's own form, opens the
documents table and sees two users' documents. A screenshot of that page is
kept at docs/admin-documents.png.

Needs Debian's `chromium` at /usr/bin/chromium and the `playwright` Python
package (dev extra). Playwright never downloads a browser here: it drives
the system one through `executable_path`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
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
SCREENSHOT = REPO / "docs" / "admin-documents.png"
USERNAME = "browser-admin"
PASSWORD = "a-long-browser-password"

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)", allow_module_level=True)
try:
    from playwright.async_api import async_playwright
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"playwright is not importable ({exc}); pip install -e '.[dev]'", allow_module_level=True)


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

            shot = tmp_path / "admin-documents.png"
            await page.screenshot(path=str(shot))
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
            assert not broken, broken
        except BaseException:
            await page.screenshot(path=str(tmp_path / "failure.png"))
            (tmp_path / "failure.html").write_text(await page.content())
            print(f"browser state kept in {tmp_path} (failure.png, failure.html, server.log); broken: {broken}")
            raise
        finally:
            await browser.close()
