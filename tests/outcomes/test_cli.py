"""``accord demo``, ``template``, ``metrics``, ``goal``, ``compare`` and ``readiness``
through the real CLI, and the pages in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli import app

runner = CliRunner()


def accord(*args: str | Path, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    data = tmp_path_factory.mktemp("demo") / "northwind"
    out = accord("demo", "--cases", "120", "--until", "2026-11-23", "--data", data)
    assert "seeded 120 cases" in out
    return ["--data", str(data)]


def test_demo_refuses_a_node_with_cases_or_members_unless_forced(
    demo: list[str], tmp_path: Path
) -> None:
    refused = accord("demo", "--cases", "5", "--until", "2026-11-23", *demo, code=1)
    assert "already holds 120 cases and 8 members" in " ".join(refused.split())
    assert "--force" in refused
    # A real node with one member and no case is refused too; --force seeds it.
    real = tmp_path / "real"
    accord("init", "--name", "Real Ltd", "--data", real)
    added = runner.invoke(
        app,
        [
            "member",
            "add",
            "boss",
            "--role",
            "admin",
            "--name",
            "Boss",
            "--password-stdin",
            "--data",
            str(real),
        ],
        input="a long password here\n",
    )
    assert added.exit_code == 0, added.output
    assert "0 cases and 1 members" in " ".join(
        accord("demo", "--cases", "5", "--until", "2026-11-23", "--data", real, code=1).split()
    )
    forced = accord("demo", "--cases", "5", "--until", "2026-11-23", "--force", "--data", real)
    assert "seeded 5 cases" in forced


def test_demo_templates_and_a_comparison_that_says_what_improved(demo: list[str]) -> None:
    listed = accord("template", "list", *demo)
    assert "billing" in listed and "v1 (" in listed and "v2 (" in listed
    diff = accord("template", "diff", "billing@v1", "billing@v2", *demo)
    assert "- activities.billing-call" in diff and "+ activities.owner-call" in diff
    assert "name: billing\nversion: 2\n" in accord("template", "export", "billing@v2", *demo)
    out = accord("compare", "--template", "billing@v1", "--template", "billing@v2", *demo)
    # The demo's v2 cuts transfers; time to agreement follows the same distribution.
    sentence = out[out.index("template:billing@v2 against") :].replace("\n", " ")
    better, rest = sentence.split("worse on", 1)
    assert "transfers (handoffs)" in better
    assert "time to first agreement" not in better
    assert "no clear difference in" in rest
    assert "name exactly two groups" in accord("compare", "--template", "billing@v1", *demo, code=1)


def test_metrics_goals_and_readiness(demo: list[str], tmp_path: Path) -> None:
    shown = accord("metrics", "show", "--template", "billing", *demo)
    assert "Transfers (handoffs)" in shown and "cases opened" in shown
    goals = accord("goal", "list", *demo)
    assert "98% of callbacks on time" in goals and "fay" in goals
    added = accord("goal", "add", "Few repeats", "--metric", "repeats", "--at-most", "0.2", *demo)
    assert "mean asked to identify again or repeat at most 0.2" in added
    assert "exactly one of" in accord("goal", "add", "x", "--metric", "repeats", *demo, code=1)
    target = added.split("added target ")[1].split(":")[0]
    assert "NOBODY" in accord("goal", "list", *demo)
    found = accord("readiness", *demo, code=1)  # a target without an owner must be fixed
    assert "has no owner" in found and "accord goal own" in found
    accord("goal", "own", target, "sara", *demo)
    csv_path = tmp_path / "facts.csv"
    accord("metrics", "export", "-o", csv_path, *demo)
    assert len(csv_path.read_text().splitlines()) == 121
    started = accord("practice", "start", "--member", "tom", *demo)
    assert "practice case sha256:" in started and "[todo] answer Pat's message" in started
    assert "[todo]" in accord("practice", "check", "--member", "tom", *demo)
    assert "have not done a practice run" in found
    assert "no practice run" in accord("practice", "check", "--member", "ann", *demo, code=1)
    assert "refreshed 0 cases" in accord("metrics", "refresh", *demo)
    assert "refreshed 120 cases" in accord("metrics", "refresh", "--all", *demo)


@pytest.mark.slow
def test_the_pages_in_a_browser(demo: list[str], tmp_path: Path, chromium: str) -> None:
    """Headless Chromium logs in as a lead and opens both pages (tools/screenshots.py)."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("screenshots", root / "tools/screenshots.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with tool.serving(Path(demo[1])) as base:
        saved = tool.shoot(base, tmp_path)
    assert [p.name for p in saved] == ["dashboard.png", "compare.png"]
    assert all(p.stat().st_size > 10_000 for p in saved)
