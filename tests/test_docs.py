"""The documents that ship with the repository hold together: every relative link
of README.md, docs/ and the test data's READMEs reaches a file, every `#anchor` an
id or heading of its target, and docs/standard.md has the anchors code cites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "tests/data").rglob("*.md")]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """Explicit `<a id>` anchors and GitHub's heading slugs of a Markdown file."""
    text = path.read_text("utf-8")
    ids = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        ids.add(slug)
    return ids


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_their_target(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text("utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists() or (anchor and anchor not in _anchors(file)):
            broken.append(target)
    assert broken == []


def test_the_standard_has_the_sections_code_cites() -> None:
    anchors = _anchors(ROOT / "docs/standard.md")
    sections = {f"s{n}" for n in range(1, 9)} | {"s2-1", "s2-2", "s2-3"}
    rules = {"givt-ua", "givt-dc", "sivt-rate", "visits", "source-classes", "readings"}
    assert sections | rules <= anchors
    assert not (ROOT / "docs/metrics-readings.md").exists()  # merged into the Readings
