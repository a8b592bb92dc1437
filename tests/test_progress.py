"""Progress: plain lines when stdout is not a terminal (CI, log files), a tqdm bar when it is."""

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from harness._progress import Progress

REPO = Path(__file__).resolve().parents[1]


def test_plain_lines_every_tenth_with_counts_rate_and_stats():
    buf = io.StringIO()
    with Progress("finetune", 20, "step", stream=buf) as p:  # StringIO is not a TTY: plain lines
        for k in range(20):
            p.update(1, loss=f"{2 - k / 10:.3f}", **{"tok/s": "123"})
    lines = buf.getvalue().splitlines()
    assert [re.match(r"\[finetune\] step (\d+)/20 \(\d+\.\d\d/s\) loss [\d.]+ tok/s 123$", x).group(1) for x in lines] == \
        [str(k) for k in range(2, 21, 2)]
    assert lines[-1].endswith("loss 0.100 tok/s 123")


def test_plain_lines_also_every_n_seconds_and_count_resumed_work():
    buf = io.StringIO()
    p = Progress("generate", 1000, "answers", done=400, stream=buf, seconds=0)  # 400 kept by an interrupted run
    p.update(1)
    p.update(1)
    assert [x.split(" (")[0] for x in buf.getvalue().splitlines()] == ["[generate] answers 401/1000", "[generate] answers 402/1000"]


def test_a_terminal_gets_a_tqdm_bar():
    main, sub = pty.openpty()
    # a terminal that reports no size (as in some containers): the bar still shows
    code = ("from harness._progress import Progress\n"
            "with Progress('finetune', 5, 'step') as p:\n"
            "    [p.update(1, loss='0.500') for _ in range(5)]\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=sub, stderr=sub, env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(60) == 0
    out = b"".join(chunks).decode()
    assert "\r" in out and "5/5" in out and "100%" in out and "loss=0.500" in out
    assert "[finetune] step" not in out  # no plain lines on a terminal
