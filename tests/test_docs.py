"""README.md and docs/*.md render as they read: CommonMark (markdown-it-py) finds every fence closed on a
line of its own, no heading inside a code block, and every relative link pointing at a file (and heading)
that exists. The README stays at most 250 lines."""

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    return {slug(tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"}


def problems(text: str, where: Path) -> list[str]:
    """What renders otherwise than it reads in the Markdown `text` of the file `where`."""
    found = []
    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").parse(text)
    for token in tokens:
        if token.type != "fence":
            continue
        start, end = token.map
        marker = token.markup
        closing = lines[end - 1].strip() if end - 1 > start else ""
        if not (closing.startswith(marker) and set(closing) <= {marker[0]}):
            found.append(f"line {start + 1}: the code block opened here is never closed")
        for number in range(start + 1, end - 1):
            line = lines[number]
            if line.lstrip().startswith(marker[:3]):
                found.append(f"line {number + 1}: a fence with text after it does not close the code block "
                             f"of line {start + 1}: {line.strip()[:40]!r}")
            elif re.match(r"#{2,6} ", line):
                found.append(f"line {number + 1}: heading {line.strip()!r} renders inside a code block")
    for token in tokens:
        for child in token.children or []:
            target = child.attrs.get("href") or child.attrs.get("src") if child.type in ("link_open", "image") else None
            if not target or SCHEME.match(target) or target.startswith("#"):
                continue
            file, _, anchor = target.partition("#")
            path = (where.parent / file).resolve()
            if not path.exists():
                found.append(f"line {token.map[0] + 1}: link to {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                found.append(f"line {token.map[0] + 1}: link to {target}: no such heading in {file}")
    return found


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_renders_as_it_reads(path):
    assert problems(path.read_text(encoding="utf-8"), path) == []


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_the_check_finds_a_misclosed_fence_a_swallowed_heading_and_a_broken_link():
    # The README's own earlier fault: a closing fence with a link on its line closes nothing.
    text = ("# Title\n\n```bash\nrnn train\n```[docs/own_data.md](docs/own_data.md): more.\n\n## Use it\n\n"
            "```bash\nrnn export\n```\n\nSee [the data](docs/nothing.md) and [runs](docs/runs.md#no-such-part).\n")
    found = problems(text, ROOT / "README.md")
    assert any("does not close the code block of line 3" in line for line in found)
    assert any("heading '## Use it' renders inside a code block" in line for line in found)
    assert any("docs/nothing.md: no such file" in line for line in found)
    assert any("docs/runs.md#no-such-part: no such heading" in line for line in found)
    assert problems("```\nnever closed\n", ROOT / "README.md") == ["line 1: the code block opened here is never closed"]
