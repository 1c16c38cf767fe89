"""What setup.py passes to setuptools.setup (its data files, entry points), read without installing."""

import runpy
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]


def captured_setup_kwargs(monkeypatch) -> dict:
    captured = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / 'setup.py'))
    return captured
