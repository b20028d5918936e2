"""Headless Chromium for tests: render a local page as a reader's browser would.

One run loads a file:// page and writes what was asked (PNG screenshot, PDF, the DOM after
load) and a net log. `Render.page_requests` lists every request the *page* started: in the net
log, a URL request whose initiator is the page (``null`` or ``file://``, the opaque origin of a
file) rather than the browser itself (``not an origin``: update checks and the like, which a
fresh profile makes whatever it loads). Host names resolve to nothing (``--host-resolver-rules``),
IP literals included, so even a request the filter missed could not leave the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in a container
    "--disable-gpu",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Every host name, IP literals included, resolves to nothing.
NO_NETWORK = "MAP * ~NOTFOUND"


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise RuntimeError(
            "chromium is not installed: 'make test' installs it (apt-get install chromium)"
        )
    return exe


@dataclass
class Render:
    returncode: int
    dom: str
    stderr: str
    netlog: Path
    requests: list[dict] = field(default_factory=list)

    @property
    def page_requests(self) -> list[str]:
        """URLs of the requests the page made (not the browser's own background traffic)."""
        return [r["url"] for r in self.requests if r.get("initiator") != "not an origin"]


def _requests(netlog: Path) -> list[dict]:
    """Every URL request started in the net log: url, initiator, isolation key."""
    data = json.loads(netlog.read_text(encoding="utf-8"))
    kinds = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    out = []
    for event in data.get("events", []):
        if kinds.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        params = event.get("params", {})
        if "url" not in params:  # the job's end event
            continue
        out.append(
            {
                "url": params.get("url", ""),
                "initiator": params.get("initiator"),
                "isolation": params.get("network_isolation_key"),
            }
        )
    return out


def render(
    page: Path,
    workdir: Path,
    *,
    screenshot: Path | None = None,
    pdf: Path | None = None,
    dump_dom: bool = False,
    window: tuple[int, int] = (1280, 900),
    timeout: float = 120,
    resolver_rules: str = NO_NETWORK,
) -> Render:
    """Load ``page`` (a local file) once in a fresh profile and write what was asked."""
    workdir.mkdir(parents=True, exist_ok=True)
    profile = workdir / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    netlog = workdir / "netlog.json"
    args = [
        chromium(),
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        f"--log-net-log={netlog}",
        f"--host-resolver-rules={resolver_rules}",
    ]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    if pdf is not None:
        args += [f"--print-to-pdf={pdf}", "--no-pdf-header-footer"]
    if dump_dom:
        args.append("--dump-dom")
    args.append(page.resolve().as_uri())
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    result = Render(proc.returncode, proc.stdout if dump_dom else "", proc.stderr, netlog)
    result.requests = _requests(netlog)
    return result
