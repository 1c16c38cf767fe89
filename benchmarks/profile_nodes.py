"""Profile the running nodes with py-spy: where a node's time goes in the graph, beside its compute.

Runs the graph as ``perception_benchmark.py``'s end-to-end phase does (a camera at ``--rate`` with 16 boxes a
640x480 ``16UC1`` frame, ``stn_node``, ``grasp_quality_node`` and a receiver, each its own process, over shared
memory), and once the camera runs, attaches ``py-spy record`` to each node process for ``--seconds`` (the first
``--warm-up`` seconds left out). Writes each node's collapsed stacks (``<node>.txt``, py-spy's ``raw`` format:
flamegraph input) to ``--out`` and prints, per node and thread, the samples and the top frames by own time (the
leaf) and by total time; samples whose leaf is a wait (a thread blocked in ``Event.wait``, the executor's wait set)
are counted apart. Beside it, over the same seconds, each node thread's CPU time, page faults and context switches
a frame (``/proc``): what a sampling profiler shows only as libc frames. py-spy is a benchmarks-only dependency
(requirements.txt); it needs ptrace permission.

    .venv/bin/python benchmarks/profile_nodes.py --seconds 15 --native --out /tmp/profile
    .venv/bin/python benchmarks/profile_nodes.py --idle --gil --out /tmp/profile_gil   # waits too; GIL holders only
    .venv/bin/python benchmarks/profile_nodes.py --summarize /tmp/profile/stn_node.txt  # a profile again
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from perception_benchmark import GRASPS, TRANSFORMS, diagnostics_of, latency_stats, number, run_phase
from stn_ros.ros.child_processes import ProcessGroup

NODES = ('stn_node', 'grasp_quality_node')
WAITS = ('wait', '_wait_for_ready_callbacks', 'sleep', 'select', 'join')
"""Leaf functions of a blocked thread (``Event.wait``, the executor's wait set): py-spy without ``--native`` reports
some of them as active."""
_LOCATION = re.compile(r' \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$')


def frame_name(frame: str, lines: bool = False) -> str:
    """``function (path/to/file.py:12)`` as ``function (file.py[:12])``: short enough for a table."""
    match = _LOCATION.search(frame)
    if not match:
        return frame
    where = Path(match['file']).name + (f':{match["line"]}' if lines and match['line'] else '')
    return f'{frame[: match.start()]} ({where})'


def summarize(collapsed: str, top: int = 25, lines: bool = False) -> str:
    """Per thread: samples, share; then the top frames of all threads by own (leaf) and by total samples."""
    threads: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = waiting = 0
    for row in collapsed.splitlines():
        stack, _, count = row.rpartition(' ')
        if not stack or not count.isdigit():
            continue
        frames, count = stack.split(';'), int(count)
        samples += count
        thread = frames[0] if frames[0].startswith(('thread', 'process')) else 'all'
        body = frames[1:] if thread != 'all' else frames
        if body and frame_name(body[-1]).split(' (')[0].rpartition('.')[2] in WAITS:
            waiting += count
            threads[f'{thread} (waiting)'] += count
            continue
        threads[thread] += count
        if body:
            own[frame_name(body[-1], lines)] += count
        for name in {frame_name(f, lines) for f in body}:
            total[name] += count
    samples -= waiting
    out = [f'{samples} samples, {waiting} more waiting']
    out += [f'  {count:6d} {count / (samples + waiting):6.1%}  {thread}' for thread, count in threads.most_common()]
    out.append('top by own samples:')
    out += [f'  {count:6d} {count / samples:6.1%}  {name}' for name, count in own.most_common(top)]
    out.append('top by total samples:')
    out += [f'  {count:6d} {count / samples:6.1%}  {name}' for name, count in total.most_common(top)]
    return '\n'.join(out)


def thread_counters(pid: int) -> dict[str, tuple[float, int, int, int]]:
    """Per thread of ``pid`` (named by its kernel name; ``main`` for the main thread): CPU ms, minor page faults,
    voluntary and involuntary context switches so far."""
    tick = os.sysconf('SC_CLK_TCK')
    counters: dict[str, tuple[float, int, int, int]] = {}
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            fields = (task / 'stat').read_text().rpartition(')')[2].split()
            status = dict(line.split(':', 1) for line in (task / 'status').read_text().splitlines() if ':' in line)
            name = 'main' if task.name == str(pid) else (task / 'comm').read_text().strip()
        except OSError:
            continue  # the thread ended
        switches = int(status['voluntary_ctxt_switches']), int(status['nonvoluntary_ctxt_switches'])
        cpu_ms, faults = (int(fields[11]) + int(fields[12])) * 1e3 / tick, int(fields[7])
        old = counters.get(name, (0.0, 0, 0, 0))  # threads of one name (a pool) add up
        counters[name] = (old[0] + cpu_ms, old[1] + faults, old[2] + switches[0], old[3] + switches[1])
    return counters


def per_frame(first: dict, last: dict, frames: float) -> str:
    """The counters' growth from ``first`` to ``last`` per frame, busiest thread first."""
    grown = {
        name: [(b - a) / frames for a, b in zip(first.get(name, (0, 0, 0, 0)), v, strict=True)]
        for name, v in last.items()
    }
    rows = sorted(((n, g) for n, g in grown.items() if g[0] > 0), key=lambda item: -item[1][0])
    return '\n'.join(
        f'  {name:16s} {g[0]:6.2f} ms CPU {g[1]:7.1f} page faults {g[2]:5.1f} / {g[3]:5.1f} context switches '
        '(voluntary / not)'
        for name, g in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=None, help='folder for the profiles (default: a temp folder)')
    parser.add_argument('--rate', type=float, default=30.0, help='camera frames per second (default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=15.0, help='profiled seconds (default: %(default)s)')
    parser.add_argument('--warm-up', type=float, default=4.0, help='seconds before profiling (default: %(default)s)')
    parser.add_argument('--sample-rate', type=int, default=200, help="py-spy's samples a second (default: %(default)s)")
    parser.add_argument('--native', action='store_true', help='native (C/C++) frames too (py-spy --native)')
    parser.add_argument('--idle', action='store_true', help='waiting threads too (py-spy --idle)')
    parser.add_argument('--gil', action='store_true', help='only the thread holding the GIL (py-spy --gil)')
    parser.add_argument('--nonblocking', action='store_true', help='never pause the node (py-spy --nonblocking)')
    parser.add_argument('--top', type=int, default=25, help='frames listed (default: %(default)s)')
    parser.add_argument('--lines', action='store_true', help='frames with their line numbers')
    parser.add_argument('--summarize', type=Path, nargs='+', help='only print the summary of these profiles')
    parser.add_argument('--device', default='cpu', help='device of the nodes (default: %(default)s)')
    args = parser.parse_args(argv)
    if args.summarize:
        for path in args.summarize:
            print(f'## {path}\n{summarize(path.read_text(), args.top, args.lines)}\n')
        return 0
    spy = shutil.which('py-spy', path=str(Path(sys.executable).parent)) or shutil.which('py-spy')
    if spy is None:
        print('profile_nodes: py-spy is not installed (pip install -r requirements.txt)', file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix='stn_ros_profile_'))
    out.mkdir(parents=True, exist_ok=True)
    flags = ['--threads', '--rate', str(args.sample_rate), '--format', 'raw', '--duration', str(int(args.seconds))]
    flags += [f'--{name}' for name in ('native', 'idle', 'gil', 'nonblocking') if getattr(args, name)]
    spies: list[subprocess.Popen] = []
    counters: dict[str, list[dict]] = {node: [] for node in NODES}

    def attach(group: ProcessGroup) -> None:
        def later() -> None:
            time.sleep(args.warm_up)
            pids = {node: group.processes[node].pid for node in NODES}
            for node, pid in pids.items():
                counters[node].append(thread_counters(pid))
                command = [spy, 'record', '--pid', str(pid), '-o', str(out / f'{node}.txt')]
                with open(out / f'{node}.py-spy.log', 'w') as log:
                    spies.append(subprocess.Popen(command + flags, stdout=log, stderr=subprocess.STDOUT))
            time.sleep(args.seconds)
            for node, pid in pids.items():
                counters[node].append(thread_counters(pid))

        threading.Thread(target=later, daemon=True).start()

    phase = run_phase(
        'profile',
        rate=args.rate,
        seconds=args.warm_up + args.seconds + 3.0,
        shared_memory=True,
        nodes=NODES,
        topics=[f'{TRANSFORMS}:pointcloud', f'{GRASPS}:pointcloud'],
        device=args.device,
        log_dir=out,
        on_started=attach,
    )
    for spy_process in spies:
        spy_process.wait(timeout=60)
    grasps = latency_stats(phase, GRASPS)
    print(f'profiles in {out}; py-spy {" ".join(flags)}')
    print(
        f'grasps p50 {grasps["p50"]:.1f} ms, p99 {grasps["p99"]:.1f} ms, {grasps["delivered"]:.1%} of the frames; '
        + ', '.join(
            f'{node} compute {number(diagnostics_of(phase, node), "processing median (ms)"):.1f} ms' for node in NODES
        )
    )
    for node in NODES:
        profile = out / f'{node}.txt'
        text = profile.read_text() if profile.is_file() else ''
        summary = summarize(text, args.top, args.lines) if text else f'no profile: see {profile}.py-spy.log'
        print(f'\n## {node}\n{summary}')
        if len(counters[node]) == 2:
            print(f'per camera frame, by thread:\n{per_frame(*counters[node], args.seconds * args.rate)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
