"""The project installs as one namespace, ``visionpipe.*``, and works beside a user's own
top-level ``models`` package (a very common name)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO

PACKAGE_FOLDERS = ("pipeline", "data", "components", "models", "serving")


def test_pyproject_lists_every_package_folder():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"visionpipe"} | {
        "visionpipe." + ".".join(init.parent.relative_to(REPO).parts)
        for top in PACKAGE_FOLDERS
        for init in (REPO / top).rglob("__init__.py")
    }
    assert listed == on_disk


def test_each_folder_appears_in_the_namespace_as_a_symlink():
    # What lets static tools (mypy in `make lint`, IDEs, import-linter) resolve visionpipe.<folder>.
    for top in PACKAGE_FOLDERS:
        link = REPO / "visionpipe" / top
        assert link.is_symlink() and link.resolve() == (REPO / top).resolve(), link


def test_wheel_holds_nothing_outside_the_visionpipe_namespace(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info into the source tree.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip_wheel, "-w", str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    names = zipfile.ZipFile(next(tmp_path.glob("visionpipe-*.whl"))).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"visionpipe", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("visionpipe/models/registry.py", "visionpipe/cli.py", "visionpipe/data/images.py"):
        assert module in names


@pytest.mark.slow
def test_editable_install_beside_an_unrelated_models_package(tmp_path):
    """A fresh venv (dependencies borrowed from this one) with its own ``models`` package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "tensorflow").is_dir())
    (site / "borrowed.pth").write_text(here + "\n")
    (site / "models").mkdir()
    (site / "models" / "__init__.py").write_text("OWNER = 'someone else'\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    check = (
        "import models, visionpipe\n"
        "from visionpipe.models.registry import model_names\n"
        "assert models.OWNER == 'someone else', models.__file__\n"
        "assert visionpipe.run_pipeline and visionpipe.load_config and visionpipe.predict\n"
        "print(model_names())\n"
    )
    out = subprocess.run(
        [venv / "bin" / "python", "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "small_cnn" in out.stdout
    cli = subprocess.run(
        [venv / "bin" / "visionpipe", "run", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert cli.returncode == 0 and "--stage" in cli.stdout, cli.stderr
