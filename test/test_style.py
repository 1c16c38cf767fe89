"""The code stays uniform: ruff's lint and format check (config: ruff.toml), as part of the test command."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('command', [['check'], ['format', '--check']], ids=['lint', 'format'])
def test_ruff_finds_nothing(command):
    pytest.importorskip('ruff', reason='ruff is a development tool (requirements.txt), not on every machine')
    result = subprocess.run(
        [sys.executable, '-m', 'ruff', *command, '--no-cache', '.'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f'ruff {" ".join(command)}:\n{result.stdout}{result.stderr}\n'
        f'fix with: .venv/bin/ruff check --fix . && .venv/bin/ruff format .'
    )
