"""portrait-animate from Python: what a script that calls it many times, or with its own
values, meets."""

from __future__ import annotations

import json
import subprocess
import sys

# A script's loop: animate() ten times with the engine it loads itself; the process's memory
# after the 3rd and the 10th call, and its thread settings before and after.
_LOOP = """
import json, sys, cv2, torch
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
threads = lambda: (torch.get_num_threads(), cv2.getNumThreads())
before, memory = threads(), {}
for i in range(1, 11):
    animate(AnimateOptions(source=sys.argv[1], driving=sys.argv[2], output_dir=sys.argv[3],
                           engine="classic", quiet=True))
    memory[i] = rss()
per_call = (memory[10] - memory[3]) / 7
print(json.dumps({"before": before, "after": threads(), "mb_per_call": per_call}))
"""


def test_animate_in_a_loop_keeps_memory_and_gives_the_threads_back(shared, tmp_path):
    """Each call's classic engine held a MediaPipe graph that was never closed (about 45 MB a
    call) and left torch and OpenCV on one thread for the rest of the script."""
    run = subprocess.run([sys.executable, "-c", _LOOP, str(shared / "assets/source/s0.jpg"),
                          str(shared / "assets/driving/d30.jpg"), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["mb_per_call"] < 12, figures
    assert figures["after"] == figures["before"], figures
