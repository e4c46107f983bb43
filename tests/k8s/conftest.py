"""Fixtures of tests/k8s: a copy of k8s/ with its secret files, rendered once per session."""

from __future__ import annotations

from typing import Any

import pytest
from k8s.manifests import OVERLAYS, Tokens, Tree, make_tree, render


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """k8s/ copied, with fresh random tokens in the secret files the overlays read."""
    return make_tree(tmp_path_factory.mktemp("k8s"), Tokens())


@pytest.fixture(scope="session")
def rendered(tree: Tree) -> dict[str, list[dict[str, Any]]]:
    """``{"dev": [...], "prod": [...], "airflow": [...]}``: the rendered objects."""
    out = {name: render(tree.root / "overlays" / name) for name in OVERLAYS}
    out["airflow"] = render(tree.root / "airflow")
    return out
