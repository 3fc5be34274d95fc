"""A checkpoint, log or report that cannot be written (disk full, file-size limit, permissions) stops with one line
naming the file and the cause, keeps the last good checkpoint, and --resume then finishes as if never
interrupted (issue 33)."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from helpers import fails, snapshot

from viewsplit.cli import main
from viewsplit.engine import checkpoint as ckpt
from viewsplit.engine.run import load_run
from viewsplit.files import atomic_path


@pytest.fixture(autouse=True)
def _one_thread():
    """Runs compared with each other train on one thread (float results depend on it)."""
    torch.set_num_threads(1)


def _failing_writes(monkeypatch, fail_at: int, err: int) -> None:
    """The ``fail_at``-th checkpoint write (1-based) writes half its bytes, then fails with ``err``."""
    real, calls = ckpt.write_bytes, {"n": 0}

    def write(path, data):
        calls["n"] += 1
        if calls["n"] != fail_at:
            return real(path, data)
        with atomic_path(path) as tmp:
            tmp.write_bytes(bytes(data[: len(data) // 2]))
            raise OSError(err, os.strerror(err), str(tmp))

    monkeypatch.setattr(ckpt, "write_bytes", write)


# writes: 6 steps with last.pt after each but the stage's last (5), the stage's end (6), final.pt (7), done (8)
@pytest.mark.parametrize("fail_at, cause", [(1, errno.ENOSPC), (4, errno.ENOSPC), (4, errno.EFBIG),
                                            (4, errno.EACCES), (7, errno.ENOSPC), (8, errno.ENOSPC)])
def test_a_failed_checkpoint_write_keeps_the_last_good_one_and_resume_finishes(tmp_path, capsys, monkeypatch, config,
                                                                              finished, fail_at, cause):
    run = tmp_path / "run"
    _failing_writes(monkeypatch, fail_at, cause)
    target = "final.pt" if fail_at == 7 else "last.pt"
    line = fails(capsys, ["train", config, "--out", run], str(run / "checkpoints" / target), os.strerror(cause),
                 "--resume")
    monkeypatch.undo()
    torch.set_num_threads(1)
    left = sorted(p.name for p in (run / "checkpoints").iterdir()) if (run / "checkpoints").exists() else []
    assert not [n for n in left if n.startswith(".")]   # no temporary file left behind
    if fail_at == 1:
        assert "no checkpoint had been written yet" in line and left == []
        assert main(["train", str(config), "--out", str(run)]) == 0   # starts again in its own folder
    else:
        assert "the last good checkpoint" in line and not ckpt.load(run / "checkpoints" / "last.pt")["done"]
        assert main(["train", str(config), "--out", str(run), "--resume"]) == 0
    a, b = load_run(finished).method.state_dict(), load_run(run).method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)   # as if never interrupted


class _FullDisk:
    """A log file on a disk that filled up after ``rows`` rows."""

    def __init__(self, fh, rows: int):
        self.fh, self.rows = fh, rows

    def write(self, text: str) -> int:
        self.rows -= 1
        if self.rows < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.fh.write(text)

    def close(self) -> None:
        self.fh.close()


def test_a_full_disk_under_the_log_stops_with_one_line_and_resume_finishes(tmp_path, capsys, monkeypatch, config,
                                                                         finished):
    from viewsplit.engine.logger import RunLogger

    real = RunLogger.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.fh = _FullDisk(self.fh, 1)   # the stage's row, then the disk is full

    monkeypatch.setattr(RunLogger, "__init__", init)
    run = tmp_path / "run"
    fails(capsys, ["train", config, "--out", run], str(run / "log.jsonl"), "No space left on device")
    monkeypatch.undo()
    torch.set_num_threads(1)
    assert not ckpt.load(run / "checkpoints" / "last.pt")["done"]
    assert main(["train", str(config), "--out", str(run), "--resume"]) == 0
    a, b = load_run(finished).method.state_dict(), load_run(run).method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_report_that_cannot_be_written_names_the_file_and_leaves_none(tmp_path, capsys, monkeypatch, finished):
    run = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(run)
    real, calls = Path.write_text, {"n": 0}

    def write_text(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:   # metrics.md, after metrics.json was written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    fails(capsys, ["eval", run], str(run / "metrics.md"), "No space left on device")
    monkeypatch.undo()
    assert snapshot(run) == before   # metrics.json did not appear alone


def test_a_real_file_size_limit_stops_with_one_line(tmp_path, config):
    """RLIMIT_FSIZE below a checkpoint's size: the write fails with EFBIG (Python ignores SIGXFSZ)."""
    run = tmp_path / "run"
    code = ("import resource, sys\nfrom viewsplit.cli import main\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
            f"sys.exit(main(['train', {str(config)!r}, '--out', {str(run)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot write checkpoint {run / 'checkpoints' / 'last.pt'}: File too large" in proc.stderr
    assert not (run / "checkpoints").exists() or not list((run / "checkpoints").iterdir())
