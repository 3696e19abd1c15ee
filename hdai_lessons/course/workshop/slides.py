"""Build one reveal.js deck per module from its lessons' cells and committed outputs.

A lesson contributes, in order: a title slide (title, motivation, objectives), its key-equation
slides (markdown cells with display math), its figures (image outputs), a "does the claim hold?"
slide (the claim lines and checked numbers its run printed) and its summary. Cells whose
``metadata.slideshow.slide_type`` is ``"slide"`` are taken as well, so an author can add any cell.
Each slide carries speaker notes: the narrative around it in the lesson.

reveal.js and KaTeX come from ``slides/vendor/`` (committed), so a deck opens from disk offline.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from html.parser import HTMLParser

import nbformat
from nbconvert.filters.markdown import markdown2html_mistune

from hdai_lessons.course.catalogue import Lesson, all_lessons
from hdai_lessons.core.paths import repo_root

MAX_EQUATION_SLIDES = 3
MAX_FIGURE_SLIDES = 3
CLAIM_LINE = re.compile(r"claim (HOLDS|DOES NOT HOLD|NOT RESOLVED|not tested at smoke scale)")
HEADING = re.compile(r"^#+\s*(.+)$", re.M)


@dataclass
class Slide:
    kind: str            # "title" | "equation" | "figure" | "claim" | "summary" | "author"
    html: str
    notes: str = ""


@dataclass
class Deck:
    module: str
    title: str
    lessons: list[Lesson]
    slides: list[Slide] = field(default_factory=list)


_MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$", re.S)


_PLACEHOLDER = re.compile(r"HDAIMATH(\d+)END")


def _stash_math(text: str) -> tuple[str, list[str]]:
    """Cut TeX out of Markdown (as Jupyter does before its Markdown pass): placeholders + the TeX."""
    math: list[str] = []

    def stash(m: re.Match) -> str:
        math.append(m.group(0))
        return f"HDAIMATH{len(math) - 1}END"

    return _MATH.sub(stash, text), math


def _md(text: str) -> str:
    """Markdown → HTML with math protected (so ``w^*`` or ``\\|u\\|`` are not read as emphasis or
    escapes); the TeX goes back HTML-escaped for KaTeX to render in the browser."""
    body, math = _stash_math(text)
    return _PLACEHOLDER.sub(lambda m: html.escape(math[int(m.group(1))]), markdown2html_mistune(body))


def _plain(text: str, limit: int = 700) -> str:
    """Markdown → short plain text for speaker notes (inline math kept intact for KaTeX)."""
    text, math = _stash_math(re.sub(r"\$\$.*?\$\$", "[equation]", text, flags=re.S))
    text = re.sub(r"\s+", " ", re.sub(r"[#*`_>|]", "", text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + " …"
    text = re.sub(r"HDAIMATH\d*(END)?$", "", text)          # a placeholder cut by the limit
    return _PLACEHOLDER.sub(lambda m: math[int(m.group(1))], text)


def _stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _images(cell) -> list[str]:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "image/png" in data:
            png = data["image/png"]
            png = png if isinstance(png, str) else "".join(png)
            out.append(png.replace("\n", ""))
    return out


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TagBalance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.unclosed: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in _VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.open:  # elements closed only implicitly by an outer end tag count as unclosed
            while (inner := self.open.pop()) != tag:
                self.unclosed.append(inner)


def unclosed_tags(fragment: str) -> list[str]:
    """HTML elements a slide opens and never closes (raw ``<view>`` in Markdown swallows the deck)."""
    parser = _TagBalance()
    parser.feed(fragment)
    parser.close()
    return parser.unclosed + parser.open


def lesson_slides(lesson: Lesson) -> list[Slide]:
    """The slides one lesson contributes to its module's deck."""
    nb = nbformat.read(str(lesson.path), as_version=4)
    cells = nb.cells
    slides: list[Slide] = []
    markdown = [c for c in cells if c.cell_type == "markdown"]
    intro = markdown[0].source if markdown else f"# {lesson.title}"
    slides.append(Slide("title", f'<div class="lesson-id">Lesson {lesson.id}</div>' + _md(intro),
                        notes=f"Lesson {lesson.id}, budget {lesson.budget_s} s at toy scale. " + _plain(intro)))
    n_eq = n_fig = 0
    last_md = ""
    claims: list[str] = []
    checked: list[str] = []
    for cell in cells:
        authored = cell.get("metadata", {}).get("slideshow", {}).get("slide_type") == "slide"
        if cell.cell_type == "markdown":
            if authored:
                slides.append(Slide("author", _md(cell.source), notes=_plain(cell.source)))
            elif "$$" in cell.source and n_eq < MAX_EQUATION_SLIDES and cell is not markdown[0]:
                slides.append(Slide("equation", _md(cell.source), notes=_plain(cell.source)))
                n_eq += 1
            last_md = cell.source
            continue
        if cell.cell_type != "code":
            continue
        text = _stream_text(cell)
        claims += [line for line in text.splitlines() if CLAIM_LINE.search(line)]
        if cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT") and text.strip():
            checked.append(text.strip())
        for png in _images(cell)[:1]:
            if n_fig < MAX_FIGURE_SLIDES or authored:
                heading = HEADING.search(last_md)
                caption = html.escape(heading.group(1)) if heading else lesson.title
                slides.append(Slide("figure", f"<h3>{caption}</h3><img class='figure' src='data:image/png;base64,{png}'>",
                                    notes=_plain(last_md)))
                n_fig += 1
    if claims or checked:
        body = "".join(f"<li>{html.escape(c)}</li>" for c in claims)
        numbers = html.escape("\n".join(checked)[-1500:])
        slides.append(Slide("claim", f"<h3>Does the paper's claim hold? ({lesson.id})</h3><ul class='claims'>{body}</ul>"
                                     f"<pre class='numbers'>{numbers}</pre>",
                            notes="These numbers are the lesson's committed toy-scale run; re-run it live to show they repeat."))
    summary = next((c.source for c in reversed(markdown) if "summary" in c.source.lower()), None)
    if summary:
        slides.append(Slide("summary", _md(summary), notes=_plain(summary)))
    for slide in slides:
        left_open = unclosed_tags(slide.html)
        if left_open:
            raise ValueError(f"lesson {lesson.id}: a {slide.kind} slide leaves <{'>, <'.join(left_open)}> open; "
                             f"write literal angle brackets in its Markdown as &lt; &gt; or inside `code`")
    return slides


def build_deck(module: str, lessons: list[Lesson]) -> Deck:
    title = lessons[0].module_title
    deck = Deck(module=module, title=title, lessons=lessons)
    overview = "".join(f"<li>{l.id} · {html.escape(l.title)}</li>" for l in lessons)
    deck.slides.append(Slide("title", f"<h1>Module {module}</h1><h2>{html.escape(title)}</h2><ul>{overview}</ul>",
                             notes="Module overview. " + " ".join(f"{l.id}: {l.builds}." for l in lessons)))
    for lesson in lessons:
        deck.slides.extend(lesson_slides(lesson))
    return deck


def render_deck(deck: Deck, vendor_prefix: str = "vendor") -> str:
    """The deck as a standalone HTML page that loads reveal.js and KaTeX from ``vendor_prefix``."""
    sections = "\n".join(
        f'<section data-kind="{s.kind}">{s.html}<aside class="notes">{html.escape(s.notes)}</aside></section>'
        for s in deck.slides)
    v = vendor_prefix
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>HDAI Lessons · Module {deck.module}: {html.escape(deck.title)}</title>
<link rel="stylesheet" href="{v}/reveal/dist/reveal.css">
<link rel="stylesheet" href="{v}/reveal/dist/theme/white.css">
<link rel="stylesheet" href="{v}/katex/katex.min.css">
<style>
.reveal .slides section {{ font-size: 0.55em; text-align: left; overflow-y: auto; max-height: 100%; }}
.reveal h1, .reveal h2, .reveal h3 {{ text-transform: none; }}
.reveal img.figure {{ max-height: 520px; }}
.reveal pre.numbers {{ font-size: 0.7em; white-space: pre-wrap; box-shadow: none; }}
.reveal .lesson-id {{ color: #888; }}
.reveal table {{ font-size: 0.8em; }}
.reveal .anchor-link {{ display: none; }}
</style></head>
<body><div class="reveal"><div class="slides">
{sections}
</div></div>
<script src="{v}/reveal/dist/reveal.js"></script>
<script src="{v}/reveal/plugin/notes/notes.js"></script>
<script src="{v}/katex/katex.min.js"></script>
<script src="{v}/katex/contrib/auto-render.min.js"></script>
<script>
renderMathInElement(document.body, {{
  delimiters: [{{left: "$$", right: "$$", display: true}}, {{left: "$", right: "$", display: false}}],
  throwOnError: false
}});
Reveal.initialize({{ hash: true, slideNumber: true, width: 1100, height: 760, plugins: [RevealNotes] }});
</script></body></html>
"""


def modules_with_lessons() -> dict[str, list[Lesson]]:
    modules: dict[str, list[Lesson]] = {}
    for lesson in all_lessons():
        modules.setdefault(lesson.module, []).append(lesson)
    return modules


def build_all(out_dir: "Path | None" = None) -> list[Path]:
    """Write ``slides/module-MM.html`` for every module and ``slides/index.html``; return the decks."""
    out_dir = out_dir or repo_root() / "slides"
    vendor = repo_root() / "slides" / "vendor"
    if not (vendor / "reveal" / "dist" / "reveal.js").exists():
        raise FileNotFoundError(f"{vendor} is missing reveal.js; run scripts/vendor_slide_assets.sh (needs npm once)")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = Path("vendor") if out_dir.resolve() == (repo_root() / "slides").resolve() else vendor
    paths = []
    links = []
    for module, lessons in modules_with_lessons().items():
        deck = build_deck(module, lessons)
        path = out_dir / f"module-{module}.html"
        path.write_text(render_deck(deck, vendor_prefix=str(prefix)))
        paths.append(path)
        links.append(f"<li><a href='{path.name}'>Module {module}: {html.escape(deck.title)}</a> ({len(deck.slides)} slides)</li>")
    (out_dir / "index.html").write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>HDAI Lessons · decks</title></head>"
        f"<body><h1>HDAI Lessons · slide decks</h1><ul>{''.join(links)}</ul>"
        "<p>Press S in a deck for speaker notes.</p></body></html>\n")
    return paths
