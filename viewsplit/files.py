"""Writing files safely: temporary names renamed when complete, the run-folder lock, inputs never overwritten.

* :func:`temp_name` / :func:`atomic_path` / :func:`write_bytes`: a file is written under a hidden temporary
  name in its own folder and ``os.replace``-d over the target when complete, so a reader (or a kill) sees the
  old file or the new one, never a torn one; a failure removes the temporary file and the folders it created.
* :class:`Staged`: several outputs renamed into place together when a block succeeds; when it fails, none
  of them appears (and a folder it created is removed again).
* :func:`run_lock`: an exclusive ``fcntl.flock`` on ``<run>/.viewsplit.lock`` while a process writes a run
  folder.  The kernel releases it when the process ends, however it ends (``kill -9`` too), so a crash never
  leaves a run folder locked.  The lock file stays and marks the folder as a viewsplit run.
* :func:`refuse_inputs`: an output path that is one of the command's input files is refused.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterable
from pathlib import Path
from types import TracebackType

from .errors import ConfigError

LOCK_NAME = ".viewsplit.lock"


def temp_name(path: Path) -> Path:
    """A hidden temporary name beside ``path`` keeping its suffix (``.name.tmp<pid>.png``: tools that infer the
    format from the suffix still work; :func:`viewsplit.engine.checkpoint.remove_orphans` finds them)."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, outermost first."""
    missing = []
    for f in (folder, *folder.parents):
        if f.exists():
            break
        missing.append(f)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_dirs(created: Iterable[Path]) -> None:
    """Remove the folders of ``created`` (from :func:`make_dirs`) that are empty, innermost first."""
    for f in reversed(list(created)):
        with contextlib.suppress(OSError):
            f.rmdir()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Generator[Path, None, None]:
    """Yield a temporary path to write ``path``'s content to; renamed over ``path`` when the block ends
    normally, else removed (with the folders created for it).  An ``OSError`` about the temporary file is
    raised again naming ``path``."""
    path = Path(path)
    created = make_dirs(path.parent)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        remove_dirs(created)
        raise _named(err, tmp, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_dirs(created)
        raise


def _named(err: OSError, tmp: Path, path: Path) -> OSError:
    """``err`` about the temporary file ``tmp`` (or about no file) told about ``path``, the file the user knows."""
    if err.errno is None or err.filename not in (None, str(tmp)):
        return err
    return OSError(err.errno, err.strerror, str(path))


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically and ``fsync`` it, so the rename never exposes unflushed bytes."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class Staged:
    """Outputs written under temporary names (:meth:`path`), renamed into place together by :meth:`commit` or
    when the ``with`` block ends normally; when it raises, the temporary files, the outputs committed in it
    that did not exist before, and the folders it created are removed."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.pending: list[tuple[Path, Path]] = []
        self.new: list[Path] = []          # committed outputs that did not exist before
        self.created: list[Path] = []

    def __enter__(self) -> Staged:
        self.created = make_dirs(self.folder)
        return self

    def path(self, final: str | Path) -> Path:
        """Where to write ``final`` (a path in any folder below :attr:`folder`) until the commit."""
        final = Path(final)
        self.created += make_dirs(final.parent)
        tmp = temp_name(final)
        self.pending.append((tmp, final))
        return tmp

    def write_text(self, final: str | Path, text: str) -> None:
        """Write ``text`` as ``final`` (at the commit); an ``OSError`` names ``final``."""
        tmp = self.path(final)
        try:
            tmp.write_text(text)
        except OSError as err:
            raise _named(err, tmp, Path(final)) from None

    def commit(self) -> list[Path]:
        """Rename every pending output into place; the final paths."""
        done = []
        for tmp, final in self.pending:
            if not final.exists():
                self.new.append(final)
            os.replace(tmp, final)
            done.append(final)
        self.pending = []
        return done

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
            return
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)
        for final in self.new:
            final.unlink(missing_ok=True)
        remove_dirs(self.created)


# ---------------------------------------------------------------------------- run folders
def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a viewsplit run folder: it holds the lock file (every run since it existed), or
    ``config.yaml`` and ``checkpoints/`` (runs written before)."""
    return (folder / LOCK_NAME).is_file() or ((folder / "config.yaml").is_file() and (folder / "checkpoints").is_dir())


def check_run_folder(folder: Path, option: str = "--out") -> None:
    """Refuse ``folder`` as a run folder unless it is new, empty, or a viewsplit run folder."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is a file; {option} must be a run folder")
    if folder.is_dir() and any(folder.iterdir()) and not is_run_folder(folder):
        raise ConfigError(f"{folder}: exists and is not a viewsplit run folder (no {LOCK_NAME}, nor config.yaml "
                          f"and checkpoints/); a run writes only into a new or empty folder or its own run folder, "
                          f"so choose another {option}")


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Generator[Path, None, None]:
    """Hold the run folder's lock (created with the folder if needed) for the block; a :class:`ConfigError`
    naming the folder when another process holds it.  A folder this call created and left holding nothing
    but the lock file is cleared again (a lock file this call created, in a folder holding nothing else, is
    removed; so is the folder if this call created it), so a run refused by a later check leaves no trace."""
    folder = Path(folder)
    created = make_dirs(folder)
    lock = folder / LOCK_NAME
    fresh = not lock.exists()
    fh = open(lock, "a+")  # noqa: SIM115  (held for the block; closing it releases the lock)
    try:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no lock
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip()
                raise ConfigError(f"{folder}: another viewsplit process{f' (pid {holder})' if holder else ''} is "
                                  "writing this run folder; wait for it to finish or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield folder
    finally:
        if fresh and all(p.name == LOCK_NAME for p in folder.iterdir()):
            lock.unlink(missing_ok=True)
            remove_dirs(created)
        fh.close()


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same existing file or folder (symlinks and hard links included)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(out: Path, inputs: Iterable[Path], option: str = "--out") -> None:
    """A :class:`ConfigError` when ``out`` is one of ``inputs`` or lies inside an input folder's
    ``checkpoints/``: writing it would destroy what the command reads."""
    out = Path(out).expanduser()
    for given in inputs:
        given = Path(given).expanduser()
        if same_file(out, given):
            raise ConfigError(f"{option} {out}: is an input of this command ({given}); writing it would destroy "
                              "the input, so choose another output path")
        if given.is_dir() and out.exists() and any(same_file(out, f) for f in _run_inputs(given)):
            raise ConfigError(f"{option} {out}: is a file of the run folder {given}; choose another output path")


def _run_inputs(folder: Path) -> list[Path]:
    """The files of a run folder that its commands read or that record the run."""
    ckpts = folder / "checkpoints"
    files = [folder / n for n in ("config.yaml", "log.jsonl", "metrics.json", "metrics.md", LOCK_NAME)]
    return [*files, ckpts, *(ckpts.iterdir() if ckpts.is_dir() else [])]
