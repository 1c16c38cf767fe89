"""The benchmark command runs as a user runs it (tiny settings: this checks it works, not the figures)."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NEEDS_ROS, ROS_AVAILABLE

ROOT = Path(__file__).resolve().parents[1]


PERCEPTION_ARGS = ['--crops', '1', '4', '--frames', '3', '--e2e-seconds', '4']
# The benchmark's parts split in two runs at once (their phases are mostly timed waits): each transport's section 3,
# the rest of the phases on either side, so both take about as long.
PERCEPTION_PARTS = {
    'default': ['--transports', 'default', '--rates', '30', '--rate-seconds', '4', '--soak-seconds', '0'],
    'shared-memory': ['--transports', 'shared-memory', '--rates', '--soak-seconds', '8', '--large-seconds', '0'],
}
SINGLE_PROCESS_ARGS = ['--rounds', '1', '--seconds', '4']
PLANNING_ARGS = ['--worlds', '1', '--repeats', '2', '--warmup', '1', '--layouts', 'packed', '--views', 'top,side']


def benchmark_script(script: str, *args: str) -> list[str]:
    """The command that runs a script of ``benchmarks/`` with this Python."""
    return [sys.executable, str(ROOT / 'benchmarks' / script), *args]


class BenchmarkRun:
    """One benchmark command running in the background (its own session, so stopping it stops its nodes too)."""

    def __init__(self, command: list[str], env: dict | None = None) -> None:
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=env,
        )
        self.output: tuple[str, str] | None = None

    def result(self, timeout: float) -> subprocess.CompletedProcess:
        """Wait for it (at most ``timeout`` seconds, then it is stopped and the test fails) and return its outcome."""
        if self.output is None:
            try:
                self.output = self.process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                raise
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, *self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # the commands stop their nodes on Ctrl-C
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


GPU_SESSION_HIDDEN = ('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'diagnostic_msgs', 'pybullet')


@pytest.fixture(scope='module', autouse=True)
def gpu_session(tmp_path_factory):
    """benchmarks/gpu_session.sh's dry run on the CPU with ROS hidden, started with the module so it overlaps the
    over-topics benchmarks' timed phases (it needs no ROS); stopped at the end of the module if still running."""
    folder = tmp_path_factory.mktemp('gpu_session')
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(folder / 'out'))
    env['PYTHONPATH'] = hiding(folder, *GPU_SESSION_HIDDEN)
    env['STN_GPU_SESSION_CPU_TESTS'] = '0'
    script = ROOT / 'benchmarks' / 'gpu_session.sh'
    run = BenchmarkRun(['bash', str(script), '--device', 'cpu', '--frames', '3', '--crops', '4'], env)
    try:
        yield folder / 'out', run
    finally:
        run.stop()


@pytest.fixture(scope='module')
def over_topics(tmp_path_factory):
    """The benchmark commands that time nodes over real topics, all started at once: their phases are mostly timed
    waits, so they overlap (these tests check the commands work and report every row, not their figures; each runs in
    its own random ROS domain). Whatever is still running at the end of the module is stopped."""
    if not ROS_AVAILABLE:
        pytest.skip(NEEDS_ROS)
    out = tmp_path_factory.mktemp('benchmarks')
    runs = {
        f'perception {part}': BenchmarkRun(
            benchmark_script('perception_benchmark.py', '--output', str(out / f'{part}.md'), *PERCEPTION_ARGS, *options)
        )
        for part, options in PERCEPTION_PARTS.items()
    }
    runs |= {
        'single process': BenchmarkRun(
            benchmark_script('single_process_benchmark.py', *SINGLE_PROCESS_ARGS, '--json', str(out / 's.json'))
        ),
    }
    if importlib.util.find_spec('pybullet') is not None:
        runs['planning'] = BenchmarkRun(benchmark_script('planning_benchmark.py', *PLANNING_ARGS))
    try:
        yield out, runs
    finally:
        for run in runs.values():
            run.stop()


def perception_report(over_topics, part: str) -> str:
    """The report of the perception benchmark's run of ``part`` (:data:`PERCEPTION_PARTS`), once it has passed."""
    folder, runs = over_topics
    result = runs[f'perception {part}'].result(timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return (folder / f'{part}.md').read_text()


def check_compute_sections(text: str) -> None:
    """Sections 1 and 2 (in-process compute and the alternatives), measured at both crop counts."""
    for heading in ('## 1.', '## 2.', 'Machine:'):
        assert heading in text
    assert re.search(r'\(writes this file; this run took \d+ minutes\)', text), text[:600]
    stages = re.findall(r'^\| (\d+) \| ([\d.]+) \(', text, re.MULTILINE)  # crops, decode median
    assert [count for count, _ in stages[:2]] == ['1', '4'] and all(float(ms) > 0 for _, ms in stages)


def check_end_to_end(text: str, transport: str) -> None:
    """Section 3 for ``transport`` alone: the floor, the node's compute and the outputs measured, and the OpenCV node in
    stn_node's place with the ratio and its goal."""
    rows = [line for line in text.splitlines() if line.startswith(('| default |', '| shared memory |'))]
    assert [row.split(' |')[0] for row in rows] == [f'| {transport}'] * 2, rows  # the stn_node row, the OpenCV row
    assert 'nan' not in rows[0], rows[0]
    opencv_row = r'^\| (default|shared memory) \| [\d.]+ / [\d.]+ ms \| [\d.]+% \| [\d.]+ ms \| [\d.]+ \| [\d.]+ / '
    assert re.findall(opencv_row, text, re.MULTILINE) == [transport], text
    assert 'Goal: stn_node transforms p50 / OpenCV node transforms p50 at most 0.75.' in text


@pytest.mark.timeout(420)
def test_the_benchmark_command_writes_every_section_over_the_default_transport(over_topics):
    """Section 3 over the default transport, then the rate and large-frame sections; no soak (0 s) and no section 7
    (it needs the shared-memory transport)."""
    text = perception_report(over_topics, 'default')
    check_compute_sections(text)
    check_end_to_end(text, 'default')
    assert re.search(r'^\| 30 Hz \| \d+ \| [\d.]+% \| [\d.]+% \| [\d.]+ / ', text, re.MULTILINE), text
    assert '## 5.' not in text and '## 7.' not in text
    assert re.search(r'## 6\. 1280x720.*\n\nFrames sent \d+; transforms out [\d.]+%', text)  # measured, not nan


@pytest.mark.timeout(420)
def test_the_benchmark_command_writes_every_section_over_shared_memory(over_topics):
    """Section 3 over shared memory, the soak and section 7 (camera to grasps in two processes and one, then beside a
    busy process); sections 4 and 6 left out as asked."""
    text = perception_report(over_topics, 'shared-memory')
    check_compute_sections(text)
    check_end_to_end(text, 'shared memory')
    assert '## 4.' not in text and '## 6.' not in text, text
    assert re.search(r'stn_node RSS: \d+ MiB at start', text)
    assert '## 7. Camera to grasps' in text and 'Goal: grasps p50 at most 15 ms, p99 at most 25 ms.' in text
    for setup in ('two processes', 'one process'):
        row = next(line for line in text.splitlines() if line.startswith(f'| {setup} |'))
        assert re.match(
            rf'^\| {setup} \| [\d.]+ / [\d.]+ ms \| [\d.]+ / [\d.]+ ms \| [\d.]+% \| [\d.]+ / [\d.]+ ms \|$', row
        )
    busy = re.search(
        r'^\| (\d+) \| ([\d.]+)% \| .* \| (\d+) \| (\d+) \| [\d-]+ / [\d-]+ \| .* \| ([\d-]+) \| (.+) \|$', text, re.M
    )
    assert busy and int(busy[1]) > 0, text


def test_the_proposal_separation_benchmark_counts_every_object():
    pytest.importorskip('pybullet')
    result = subprocess.run(
        benchmark_script('proposal_separation.py', '--scenes', '2', '--tilt-bands', '0-10,45-60'),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    count = r'(\d+) \(.*?\)'  # a count and its share
    rows = re.findall(
        rf'^\| ([\d.-]+ deg) \| (.+?) \| (\d+) \| {count} \| {count} \| {count} \| {count} \| (\d+) \| ([\d.]+) \|$',
        result.stdout,
        re.M,
    )
    assert [band for band, *_ in rows] == ['0-10 deg'] * 6 + ['45-60 deg'] * 6, result.stdout
    names = [name for _, name, *_ in rows[:6]]  # the same six variants in each band, from before to shipped
    assert names == [name for _, name, *_ in rows[6:]]
    assert names[0].endswith('(before)') and names[3].endswith('(no cut along the rays)')
    assert names[5].endswith('(shipped)')
    for band, _, objects, *outcomes, _false, _ms in rows:
        assert int(objects) > 0 and sum(map(int, outcomes)) == int(objects), (band, objects, outcomes)


def test_the_grasp_candidates_benchmark_judges_every_choice_on_the_same_trials():
    pytest.importorskip('pybullet')
    result = subprocess.run(
        benchmark_script('grasp_candidates.py', '--scenes', '2', '--tilt-bands', '45-60', '--workers', '1'),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = dict(re.findall(r'^\| ([^|]+?) \| ([\d.]+)% / [\d.]+% \|$', result.stdout, re.M))
    assert len(rows) == 8, result.stdout
    per_object = {name: float(share) for name, share in rows.items()}
    crops_bound = per_object['best held of the crops (upper bound)']
    rule_bound = per_object['best held, with the fair rule (upper bound)']
    for name, share in per_object.items():  # a choice among the crops never beats any crop that held
        assert share <= (rule_bound if 'fair rule' in name else crops_bound), (name, result.stdout)
    assert crops_bound <= rule_bound
    assert re.search(r'^\d+ crops and the fair rule.s grasps tried, 2 scenes\.$', result.stdout, re.M)


def test_the_gpu_check_runs_without_ros_and_reports_agreement():
    """benchmarks/gpu_check.py on a machine without sensor_msgs (hidden here), checking the CPU against itself."""
    script = ROOT / 'benchmarks' / 'gpu_check.py'
    code = (
        "import runpy, sys; sys.modules['sensor_msgs'] = None; sys.modules['rclpy'] = None; "
        f"sys.argv = ['gpu_check.py', '--device', 'cpu', '--frames', '3', '--crops', '4']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('| True |') == 8 * 6 + 1 and 'agreement: ok' in result.stdout  # the goals' last row
    goals = result.stdout.split('## Goals on CPU')[1]
    assert goals.count('16 objects x 4 hypotheses') == 2 and '| GQ-CNN, 64 crops |' in goals
    assert 'no sensor_msgs here: encode not timed' in result.stdout


def hiding(tmp_path, *modules: str) -> str:
    """A PYTHONPATH folder whose sitecustomize makes ``modules`` unimportable (a machine without them)."""
    hide = tmp_path / 'hide'
    hide.mkdir(exist_ok=True)
    (hide / 'sitecustomize.py').write_text(f'import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\n')
    return str(hide)


@pytest.mark.timeout(300)
def test_the_gpu_session_script_runs_the_checks_and_the_cuda_tests_without_ros(gpu_session):
    """benchmarks/gpu_session.sh, dry run on the CPU with ROS hidden: the import check passes, gpu_check.py and the
    device matrix's cuda cases (``pytest -m cuda test``: skipped here, no CUDA) run; the no-ROS CPU suite is left
    out (STN_GPU_SESSION_CPU_TESTS=0: it is the suite this machine runs anyway)."""
    out, run = gpu_session
    result = run.result(timeout=280)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    outputs = {path.name: path.read_text() for path in out.iterdir()}
    assert set(outputs) == {'machine.txt', 'gpu_check.md', 'cuda_tests.log'}
    assert 'agreement: ok' in outputs['gpu_check.md'] and 'no sensor_msgs here' in outputs['gpu_check.md']
    log = outputs['cuda_tests.log']
    assert 'no CUDA device here' in log and 'error' not in log.lower()
    skipped = int(re.search(r'(\d+) skipped', log).group(1))
    assert skipped >= 20 and 'passed' not in log  # the matrix's cuda cases over the test modules, and only those


def test_the_gpu_session_script_names_a_missing_import_in_one_line_before_any_work(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / 'out'), PYTHONPATH=hiding(tmp_path, 'scipy'))
    command = ['bash', str(ROOT / 'benchmarks' / 'gpu_session.sh'), '--device', 'cpu']
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and result.stdout == ''
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith('gpu_session: cannot run, missing: scipy')
    assert list((tmp_path / 'out').iterdir()) == []  # nothing ran


@pytest.mark.parametrize(
    'script,args,row',
    [
        ('grasp_quality_benchmark.py', ['--objects', '2', '--frames', '3'], r'^\| 2 x 4 \| 8 \| [\d.]+ \('),
        (
            'node_compute_benchmark.py',
            ['--crops', '2', '--frames', '3', '--size', '1280', '720', '--decimation', '2'],
            r'^\| 2 \| [\d.]+ \(',
        ),
    ],
)
def test_the_per_node_compute_benchmarks_print_their_tables(script, args, row, ros_installed):
    result = subprocess.run(benchmark_script(script, *args), capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(row, result.stdout, re.MULTILINE), result.stdout


@pytest.mark.timeout(300)
def test_the_single_process_benchmark_compares_every_setup(over_topics):
    folder, runs = over_topics
    figures = folder / 's.json'
    result = runs['single process'].result(timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    for setup in ('floor', 'two processes', 'one process (single)', 'one process (per-node)', 'one process (multi)'):
        assert f'| {setup} |' in result.stdout, result.stdout
    summary = json.loads(figures.read_text())['summary']
    assert summary['floor']['messages'] > 0 and summary['two processes']['messages'] > 0
    assert summary['one process (single)']['messages'] > 0 and 'goal (faster by at least one floor)' in result.stdout


@pytest.mark.timeout(200)
def test_the_planning_benchmark_times_clutter_frames_over_topics(over_topics):
    pytest.importorskip('pybullet')
    result = over_topics[1]['planning'].result(timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r'^\| (packed, top|packed, side|all) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$',
                      result.stdout, re.M)  # fmt: skip
    assert [(name, int(frames)) for name, frames, *_ in rows] == [('packed, top', 2), ('packed, side', 2), ('all', 4)]
    assert all(0 < float(median) <= float(p90) <= float(top) for *_, median, p90, top in rows), rows
    assert re.search(r'^Goal: median at most 25 ms: (met|missed) \([\d.]+ ms\)\.$', result.stdout, re.M)
