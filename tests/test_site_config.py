"""Launch buttons that work or none; the Colab install cell; the one repository setting."""

from __future__ import annotations

from pathlib import Path

import yaml

from laperm.book.layout import Project
from laperm.book.site import site_config
from laperm.book.source import COLAB_TAG, colab_install_cell, read_page, with_colab_install

REPO = Path(__file__).resolve().parents[1]


def test_no_button_points_at_a_repository_that_does_not_exist():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    url = Project.find(REPO).repository_url
    staged = site_config(config, url)
    assert "launch_buttons" not in staged  # they would open .ipynb files the repository lacks
    if url is None:
        assert "repository" not in staged
        assert not staged["html"]["use_repository_button"]
        assert not staged["html"]["use_issues_button"]
    else:  # a URL is set: it must be a real repository of this project
        assert url.startswith("https://") and "laperm-companion" not in url


def test_a_repository_url_turns_the_buttons_on():
    config = {"repository": {"url": "https://example.org/x/y"}, "launch_buttons": {"a": 1},
              "html": {"use_repository_button": False}}
    staged = site_config(config, "https://example.org/x/y")
    assert staged["html"]["use_repository_button"] and staged["html"]["use_issues_button"]
    assert staged["repository"]["url"] == "https://example.org/x/y"
    assert "launch_buttons" not in staged


def test_colab_install_cell_runs_only_on_colab_and_is_not_rendered():
    cell = colab_install_cell("https://example.org/x/y")
    assert "remove-cell" in cell.metadata["tags"] and COLAB_TAG in cell.metadata["tags"]
    assert 'if "google.colab" in sys.modules:' in cell.source
    assert "git+https://example.org/x/y" in cell.source
    nb = read_page(REPO / "book" / "05_5_weight_agnostic.md")
    n = len(nb.cells)
    assert len(with_colab_install(nb, None).cells) == n  # no URL: nothing added
    once = with_colab_install(nb, "https://example.org/x/y")
    twice = with_colab_install(once, "https://example.org/x/y")
    assert len(twice.cells) == n + 1 and COLAB_TAG in twice.cells[0].metadata["tags"]


def test_repository_url_is_read_from_the_config(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: ''\n")
    project = Project(root=tmp_path, build=tmp_path / "_build")
    assert project.repository_url is None
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/a/b\n")
    assert project.repository_url == "https://example.org/a/b"
