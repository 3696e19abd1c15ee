"""Open decks in headless Chromium (Debian's package) and report what a person would see go wrong.

``inspect_deck`` loads a deck from disk and returns the browser console's errors, every request
that would leave the machine, whether all math rendered (KaTeX elements present, no raw ``$$``
left), and screenshots of the title slide and the first equation slide.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that stop Chromium's own background traffic (updates, sync, field trials) on a closed network.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--window-size=1200,850"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:", "chrome-extension:")


@dataclass
class DeckReport:
    deck: Path
    slides: int = 0
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    katex_elements: int = 0
    raw_math_left: list[str] = field(default_factory=list)
    katex_errors: int = 0
    screenshots: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.console_errors or self.external_requests or self.raw_math_left or self.katex_errors)


def browser_available() -> "str | None":
    """``None`` if Chromium and ChromeDriver are installed, else how to install them."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists() and not shutil.which(Path(p).name)]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver"
    return None


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def inspect_deck(deck: Path, shots_dir: Path) -> DeckReport:
    """Load ``deck`` headless; collect errors, outside requests, math rendering and two screenshots."""
    report = DeckReport(deck=deck)
    driver = _driver()
    try:
        driver.get(deck.resolve().as_uri())
        driver.implicitly_wait(2)
        driver.execute_script("return document.readyState")
        report.slides = driver.execute_script("return Reveal.getTotalSlides()")
        report.katex_elements = driver.execute_script("return document.querySelectorAll('.katex').length")
        report.katex_errors = driver.execute_script("return document.querySelectorAll('.katex-error').length")
        report.raw_math_left = driver.execute_script(
            "const w = document.createTreeWalker(document.querySelector('.slides'), NodeFilter.SHOW_TEXT);"
            "const out = []; let n; while ((n = w.nextNode())) {"
            "  if (n.parentElement.closest('aside.notes, pre, code, .katex')) continue;"
            "  if (/\\$\\$|\\\\\\(|\\\\frac|\\\\sum/.test(n.textContent)) out.push(n.textContent.slice(0, 80)); }"
            "return out;")
        shots_dir.mkdir(parents=True, exist_ok=True)
        title = shots_dir / f"{deck.stem}-title.png"
        driver.save_screenshot(str(title))
        report.screenshots.append(title)
        eq_index = driver.execute_script(
            "const s = Array.from(document.querySelectorAll('.slides > section'));"
            "return s.findIndex(x => x.querySelector('.katex-display'));")
        if eq_index is not None and eq_index >= 0:
            driver.execute_script(f"Reveal.slide({eq_index});")
            driver.execute_script("return new Promise(r => setTimeout(r, 600))")
            eq = shots_dir / f"{deck.stem}-equation.png"
            driver.save_screenshot(str(eq))
            report.screenshots.append(eq)
        for entry in driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                report.console_errors.append(entry.get("message", ""))
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                url = msg["params"]["request"]["url"]
                if not url.startswith(LOCAL_SCHEMES):
                    report.external_requests.append(url)
    finally:
        driver.quit()
    return report
