"""Child processes that always stop: each in its own process group, SIGINT first, then SIGKILL.

Used by the demo and the benchmarks to run nodes as separate processes. No rclpy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def node_command(executable: str, params: Sequence[str] = (), remaps: Sequence[str] = ()) -> list[str]:
    """The installed node ``executable`` (beside this interpreter) with its shipped parameter file
    ``config/<executable>.yaml``, then ``-p`` overrides ``params`` and ``-r`` remappings ``remaps``."""
    from stn_ros.core.package_files import package_file

    args = [
        str(Path(sys.executable).parent / executable),
        '--ros-args',
        '--params-file',
        str(package_file('config', f'{executable}.yaml')),
    ]
    for param in params:
        args += ['-p', param]
    for remap in remaps:
        args += ['-r', remap]
    return args


def pipeline_command(
    params: Mapping[str, Sequence[str]] | None = None, remaps: Sequence[str] = (), options: Sequence[str] = ()
) -> list[str]:
    """The installed ``perception_pipeline`` (``stn_node`` and ``grasp_quality_node`` in one process) with its
    ``options`` (e.g. ``--executor single``), both nodes' shipped parameter files, then node-scoped
    ``-p <node>:<param>:=<value>`` overrides (``params``: per node name, ``param:=value`` items) and ``-r`` remappings
    ``remaps`` (each applies to every node that uses the name)."""
    from stn_ros.core.package_files import package_file

    args = [str(Path(sys.executable).parent / 'perception_pipeline'), *options, '--ros-args']
    for node in ('stn_node', 'grasp_quality_node'):
        args += ['--params-file', str(package_file('config', f'{node}.yaml'))]
    for node, node_params in (params or {}).items():
        for param in node_params:
            args += ['-p', f'{node}:{param}']
    for remap in remaps:
        args += ['-r', remap]
    return args


class ProcessGroup:
    """Named child processes; :meth:`stop` (or leaving a ``with`` block) ends every one of them."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}

    def start(
        self,
        name: str,
        args: Sequence[str],
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout_pipe: bool = False,
    ) -> subprocess.Popen:
        """Start ``args`` as ``name``; output goes to ``log`` (default: discarded) or a pipe."""
        if stdout_pipe:
            out = subprocess.PIPE
        elif log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, 'w')
        else:
            out = subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                list(args),
                stdout=out,
                stderr=subprocess.STDOUT if log or stdout_pipe else subprocess.DEVNULL,
                env=None if env is None else dict(env),
                start_new_session=True,
                text=True,
            )
        finally:
            if log is not None and not stdout_pipe:
                out.close()
        self.processes[name] = process
        return process

    def check_alive(self, names: Sequence[str] | None = None) -> None:
        """Raise ``RuntimeError`` naming the first process (of ``names``, default all) that has exited."""
        for name, process in self.processes.items():
            if (names is None or name in names) and process.poll() is not None:
                raise RuntimeError(f'{name} exited with code {process.returncode} (see its log)')

    def stop(self, names: Sequence[str] | None = None, timeout: float = 10.0) -> None:
        """SIGINT to each process group (``names`` or all), SIGKILL to what is left after ``timeout``."""
        chosen = [(n, p) for n, p in self.processes.items() if names is None or n in names]
        for _, process in chosen:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for _, process in chosen:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for name, _ in chosen:
            self.processes.pop(name)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
