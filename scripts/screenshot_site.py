"""Screenshot every page of the built site in headless Chromium, as a reader's browser shows it.

Usage: ``python scripts/screenshot_site.py [--site site] [--out screenshots] [--width 1280]
[--height 900] [--full-height 5000] [--chromium PATH] [PAGE ...]``

The site is served over HTTP on 127.0.0.1 (a free port, only for the run) so that it behaves as
when deployed (search, relative links). For each page two PNGs are written under ``--out``:
``NAME.png`` (the first screen, ``width x height``) and ``NAME-full.png`` (``width x
full-height``, the page as far as it goes). ``nox -s docs-screenshots`` builds the site and runs
this; it is not part of CI. Chromium: Debian's ``chromium`` package (``apt-get install
chromium``), or any Chromium/Chrome given with ``--chromium``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-device-scale-factor=1",
    "--virtual-time-budget=4000",
]


def pages(site: Path) -> list[str]:
    """Site-relative URLs of every content page (``""`` for the home page, ``"api/"`` ...)."""
    out = []
    for f in sorted(site.rglob("index.html")):
        rel = f.parent.relative_to(site).as_posix()
        if rel.split("/")[0] in ("assets", "search"):
            continue
        out.append("" if rel == "." else rel + "/")
    return out


def find_chromium(given: str | None) -> str:
    for name in ([given] if given else ["chromium", "chromium-browser", "google-chrome", "chrome"]):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise SystemExit("no Chromium found: apt-get install chromium (Debian), or pass --chromium PATH")


def shoot(chromium: str, url: str, out: Path, width: int, height: int, profile: Path) -> None:
    cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
           f"--screenshot={out}", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium failed on {url} ({r.returncode}): {r.stderr[-800:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", type=Path, default=Path("site"))
    ap.add_argument("--out", type=Path, default=Path("screenshots"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--full-height", type=int, default=5000)
    ap.add_argument("--chromium")
    ap.add_argument("page", nargs="*", help="site-relative pages (default: all), e.g. api/ frameworks/jax/")
    a = ap.parse_args(argv)
    if not (a.site / "index.html").exists():
        print(f"{a.site}/index.html not found: run mkdocs build first", file=sys.stderr)
        return 1
    chromium = find_chromium(a.chromium)
    a.out.mkdir(parents=True, exist_ok=True)
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:  # browsers drop connections
            pass

    server = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(a.site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    written = []
    try:
        with tempfile.TemporaryDirectory() as profile:
            for page in a.page or pages(a.site):
                name = page.strip("/").replace("/", "_") or "index"
                for suffix, height in (("", a.height), ("-full", a.full_height)):
                    out = a.out / f"{name}{suffix}.png"
                    shoot(chromium, base + page, out.resolve(), a.width, height, Path(profile))
                    written.append(out)
                print(f"{page or '/'}: {a.out / name}.png, {a.out / name}-full.png", flush=True)
    finally:
        server.shutdown()
    print(f"{len(written)} screenshots in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
