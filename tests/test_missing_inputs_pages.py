"""Pages 2, 4.1 and 6 executed at the smoke profile on a machine without the authors'
files (issue 27, point 3): one notice at the top, no conclusion drawn from what is
missing, committed records where they exist, and the Status page's record of it.

Marked ``book`` (a minute or two): the pages run with ``$LAPERM_REFERENCE_DIR`` and
``$LAPERM_AUTHORS_CODE`` set to empty folders, which also switches off the folders
beside the project (``../shared/reference``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from laperm.book import inputs

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("02_weight_profiles", "04_1_authors_code", "06_published_checkpoints")


@pytest.fixture(scope="module")
def without_inputs(data_dir, tmp_path_factory):
    """The three pages executed without the authors' files; returns the build folder."""
    tmp = tmp_path_factory.mktemp("no-inputs")
    build, empty = tmp / "build", tmp / "empty"
    empty.mkdir()
    env = dict(os.environ, LAPERM_DATA_DIR=str(data_dir), LAPERM_BUILD_DIR=str(build),
               LAPERM_REFERENCE_DIR=str(empty), LAPERM_AUTHORS_CODE=str(empty),
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "laperm.cli", "--root", str(REPO), "run",
                           *SECTIONS, "--profile", "smoke", "--force", "-q", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build


def _outputs(build: Path, section: str) -> list[dict]:
    nb = nbformat.read(str(build / "executed" / f"{section}.ipynb"), as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("name") != "stderr"]


def _text(outputs) -> str:
    return json.dumps([o.get("data", {}) for o in outputs] + [o.get("text", "") for o in outputs])


def _boxes(outputs) -> list[str]:
    return [o["data"]["text/markdown"] for o in outputs
            if "laperm-missing-inputs" in o.get("data", {}).get("text/html", "")]


def test_page_6_says_once_what_is_missing_and_concludes_nothing(without_inputs):
    outputs = _outputs(without_inputs, "06_published_checkpoints")
    assert not any(o.get("output_type") == "error" for o in outputs)
    boxes = _boxes(outputs)
    assert len(boxes) == 1
    assert boxes[0].startswith("**Not executed in this build:** the authors' checkpoints "
                               "Conv7.h5, F1.h5, F2.h5, resnet50.h5, resnet50_30.h5, "
                               "resnet50_50.h5 and resnet50_70.h5 were not found; download "
                               "them from the `pretrained` folder of ")
    assert "$LAPERM_REFERENCE_DIR" in boxes[0]
    assert "Not measured here: every table, figure and sentence of this page." in boxes[0]
    # the box is the page's first output after the banner
    assert any("laperm-missing-inputs" in o.get("data", {}).get("text/html", "") for o in outputs[:3])
    text = _text(outputs)
    for conclusion in ("files found load into", "Zero fractions differ", "every kernel holds",
                       "equal to the published number", "standard errors of the published"):
        assert conclusion not in text, conclusion
    assert not any("image/png" in o.get("data", {}) for o in outputs)  # no figure
    assert str(without_inputs.parent) not in text


def test_page_4_1_shows_the_committed_records_under_one_notice(without_inputs):
    outputs = _outputs(without_inputs, "04_1_authors_code")
    assert not any(o.get("output_type") == "error" for o in outputs)
    boxes = _boxes(outputs)
    assert len(boxes) == 1
    # an empty folder in $LAPERM_AUTHORS_CODE: the code "lacks" the authors' first file
    assert boxes[0].startswith("**Not executed in this build:** the authors' code lacks "
                               "LaPerm.py; to run it, install tf-keras")
    assert "Shown instead: the committed records of the sync compared bit for bit " in boxes[0]
    text = _text(outputs)
    sync = json.loads((REPO / "results" / "crosscheck" / "sync.json").read_text())
    n = len(sync["table"])
    assert f"**Sync**: identical bits in {n} of {n} cases" in text  # from the record
    assert "**Training**: with the matching loss" in text
    assert "Profile `smoke`" in text  # the banner is shown
    assert sum("Not executed in this build" in _text([o]) for o in outputs) == 1  # one output
    assert "pip install 'laperm[crosscheck]'" in boxes[0]  # how to get it
    # the committed seed tables are shown, named by their record
    record = json.loads((REPO / "results" / "crosscheck" / "distribution.json").read_text())
    origin = (f"Source of the numbers: a committed record ({record['scale']}), made by "
              f"`python -m laperm.crosscheck distribution` on {record['date'][:10]}")
    assert json.dumps(origin)[1:-1] in text
    assert f"commit {record['commit'][:10]}" in text
    assert str(without_inputs.parent) not in text  # no local path


def test_page_2_skips_parts_b_and_c_with_one_notice(without_inputs):
    outputs = _outputs(without_inputs, "02_weight_profiles")
    boxes = _boxes(outputs)
    assert len(boxes) == 1
    assert inputs.PROFILE_CHECKPOINT_PART in boxes[0] and inputs.IMAGENET_PART in boxes[0]
    text = _text(outputs)
    assert "He-uniform check" not in text and "authors' checkpoint:**" not in text
    assert "VGG16 (ImageNet):**" not in text
    assert "**F2 trained with Adam:**" in text  # part (a) ran


def test_the_status_records_list_what_was_skipped(without_inputs):
    record = json.loads((without_inputs / "status" / "02_weight_profiles.json").read_text())
    assert record["profile"] == "smoke"
    assert inputs.PROFILE_CHECKPOINT_PART in record["skipped_parts"]
    assert inputs.IMAGENET_PART in record["skipped_parts"]
    assert record["missing_inputs"][0] == ("the authors' checkpoints Conv7.h5 and resnet50.h5 "
                                           "were not found")
    record = json.loads((without_inputs / "status" / "04_1_authors_code.json").read_text())
    assert record["missing_inputs"] == ["the authors' code lacks LaPerm.py"]
