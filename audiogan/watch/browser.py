"""Headless Chromium, as Debian packages it, driven through chromedriver by a pinned selenium.

Nothing is downloaded at run time: the browser is /usr/bin/chromium and the driver
/usr/bin/chromedriver (packages `chromium`, `chromium-driver`), both given to selenium
explicitly, so its driver manager never runs. The flags are the ones this kind of machine
needs (a closed network: background networking, component updates and sync stay off) and
each browser gets a new empty profile in a temporary directory.

A page behind Ray's token auth gets the token as an `Authorization` header through the
DevTools protocol (`Network.setExtraHTTPHeaders`), set only for that page. Every request
the page made is read back from the performance log (`requests()`), which is how a test
proves that a page opened from disk fetched nothing from the network.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

from audiogan.watch import procs

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--mute-audio", "--autoplay-policy=no-user-gesture-required")

# Every element matching a selector, through open shadow roots (TensorBoard's Polymer
# dashboards keep their <audio> and <img> there, out of reach of querySelectorAll).
DEEP_QUERY = """
const found = [], selector = arguments[0];
(function walk(root) {
  for (const el of root.querySelectorAll(selector)) found.push(el);
  for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
})(document);
return found;
"""


def unavailable() -> str | None:
    """Why no browser test can run here (None: it can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"no {' or '.join(missing)} (Debian packages chromium and chromium-driver: "
                "apt-get install -y --no-install-recommends chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[browser]')"
    return None


class Browser:
    """One headless Chromium window. Use as a context manager: leaving it ends every
    process the browser started (by the marker in their environment)."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.marker = procs.new_marker()
        self.profile = tempfile.mkdtemp(prefix="audiogan-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        # HOME and XDG dirs in the profile too: Chromium's crash handler and caches write
        # nothing outside this temporary directory.
        env = {**os.environ, procs.MARKER: self.marker, "HOME": self.profile,
               "XDG_CONFIG_HOME": self.profile, "XDG_CACHE_HOME": self.profile}
        service = Service(executable_path=CHROMEDRIVER, env=env)
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
        except Exception:
            self._cleanup()
            raise
        self.driver.execute_cdp_cmd("Network.enable", {})

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Load `url`, sending `headers` with its requests (and none on later pages)."""
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers or {}})
        if self.driver.current_url.split("#")[0] == url.split("#")[0]:
            # Only the fragment differs: a single-page app would re-route in place, and a
            # check could read the previous route's table before the new one renders.
            self.driver.get("about:blank")
        self.requests()  # forget the previous page's requests
        self.driver.get(url)

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, script: str, timeout_s: float = 60.0, poll_s: float = 0.5, *args: Any) -> Any:
        """The first truthy value of `script` (RuntimeError with the page's text after
        `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.run(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out on {self.driver.current_url}: {script[:80]!r}; "
                                   f"page text: {self.text()[:300]!r}")
            time.sleep(poll_s)

    def deep(self, selector: str, script: str) -> Any:
        """`script` run on the list of elements matching `selector` through shadow roots,
        as `els`, e.g. deep('audio', 'return els.map(e => e.src)')."""
        return self.run(f"const els = (function() {{ {DEEP_QUERY} }}).apply(null, arguments);"
                        f"\n{script}", selector)

    def text(self) -> str:
        return self.run("return document.body ? document.body.innerText : ''") or ""

    def requests(self) -> list[str]:
        """URLs the pages requested since the last call (from the performance log)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def screenshot(self, path: str, width: int = 960, colors: int = 64) -> str:
        """A small PNG of the window: scaled to `width` pixels, `colors` palette colours."""
        import io

        from PIL import Image

        image = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.LANCZOS)
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        return path

    def close(self) -> list[int]:
        """Quit the browser; returns the pids that had to be killed after it."""
        from selenium.common.exceptions import WebDriverException
        from urllib3.exceptions import HTTPError

        try:
            self.driver.quit()
        except (WebDriverException, HTTPError, OSError):  # a dead driver: its processes
            pass                                          # are ended below
        return self._cleanup()

    def _cleanup(self) -> list[int]:
        left = procs.stop_marked(self.marker)
        shutil.rmtree(self.profile, ignore_errors=True)
        return left
