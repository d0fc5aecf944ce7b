"""docs/client.md's examples run as written against a live node."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from accord.client import AccordClient

from .conftest import Desk

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def test_the_documented_examples_work(
    live: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.setenv("ACCORD_URL", live.url)
    monkeypatch.setenv("ACCORD_TOKEN", live.tom)
    namespace: dict[str, object] = {"__name__": "docs_client"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "1"  # the agreement's version
    assert len(ast.literal_eval(printed[1])) == 3  # the outages' case ids
    assert printed[2] == "4"  # cases listed
    with AccordClient(live.url, token=live.tom) as accord:
        titles = [c["title"] for c in accord.list_cases()["cases"]]
        case_id = str(namespace["case_id"])
        view = accord.case(case_id)
    assert "Business broadband contract" in titles and len(titles) == 4
    assert "router" in {c["key"] for p in view["open_proposals"].values() for c in p["changes"]}
