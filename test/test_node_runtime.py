"""The nodes' process runtime: glibc keeps the memory a frame frees (no page faults for the next frame)."""

import subprocess
import sys

import pytest

# A worker thread's frames as the nodes make them: a 640x480 16UC1 frame, its float copy, masks; freed after each.
FRAMES = """
import resource, sys, threading
import numpy as np
if sys.argv[1] == 'keep':
    from stn_ros.ros.node_runtime import keep_freed_memory
    assert keep_freed_memory()

def frames(out):
    faults = []
    for _ in range(30):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        raw = np.ones((480, 640), np.uint16)
        depth = raw.astype(np.float32)
        masks = [depth > i for i in range(4)]
        grey = np.fmax(depth, 0)
        del raw, depth, masks, grey
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    out.append(sum(faults[10:]) / 20)

out = []
worker = threading.Thread(target=frames, args=(out,))
worker.start()
worker.join()
print(out[0])
"""


def faults_per_frame(mode: str) -> float:
    result = subprocess.run([sys.executable, '-c', FRAMES, mode], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc and RUSAGE_THREAD: Linux')
def test_a_worker_thread_reuses_the_memory_of_its_last_frame():
    default = faults_per_frame('default')
    if default < 200:  # glibc's default trims the thread's arena after each frame: ~1,000 faults a frame here
        pytest.skip(f'this C library does not trim a thread arena after each frame ({default:.0f} faults a frame)')
    kept = faults_per_frame('keep')
    assert kept < 10, f'{kept:.0f} page faults a frame with keep_freed_memory(), {default:.0f} without'
