"""Running an experiment to disk: metrics.json, figures, and a checkpoint to resume from.

The files of an output folder, and the rules that keep them safe:

``metrics.json``   JSON: ``config`` (the run's configuration), ``rounds`` (one object per round
                   done), ``summary`` (headline numbers), ``finished`` (true once every figure
                   is drawn), plus ``data_source`` and ``partition``. Rewritten after every round.
``checkpoint.pt``  what a restart needs: ``config`` (JSON-ready, as above) and ``federation``
                   (global weights, client and optimizer state, history, random state). Only
                   tensors and plain values, read with ``torch.load(..., weights_only=True)``, so
                   a file planted in the folder cannot run code. Removed once the run finishes.
``*.png``          the figures, drawn at the end.

- Every file is written atomically (a temporary file renamed into place), with the user's umask,
  so a run killed at any moment leaves the last complete file behind.
- Started again with the same configuration, a run continues from its checkpoint; a finished
  run is kept: nothing is recomputed unless ``force=True`` (``--force``).
- A folder that holds a run of another configuration is refused, checkpoint or not, and so is a
  damaged, empty or foreign file: one line naming the file, what is wrong and what to do.
- An output folder that cannot be used (a file, a path under a file, a folder this user cannot
  write, the empty string, a name with a line break) is refused before any data is loaded.
- One writer per folder: a folder belongs to the command that first wrote to it (a run's
  folder is not a sweep's; ``.fltutor.lock`` records which), and to one process at a time
  (``writing_to``). A second writer is refused at once, naming the holder's PID.
- Temporary files that a killed writer left (``.NAME.XXXXXXXX``) are removed by the next writer.
- A file that cannot be written (a full disk) stops the run with one line (``OutputError``)
  naming it; the files written before are whole, and the same command resumes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pickle
import re
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .checks import OutputError, check_folder
from .config import FedConfig, check
from .federation import Federation
from .viz import metric_curves, partition_heatmap

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
#: A sweep's settings (``fltutor.sweep``): the file that marks a folder as a sweep's.
SETTINGS = "sweep.json"
#: The lock file of an output folder (``writing_to``); it records who writes there.
LOCK = ".fltutor.lock"
#: What to do about a damaged or foreign file in an output folder.
DELETE_OR_MOVE = "delete it, or use another --out"


# --- writing files ---------------------------------------------------------------------------------

#: What a file holds, by its ending: the message of a write that failed names it.
CONTENTS = {".pt": "the checkpoint", ".json": "the results", ".jsonl": "the results",
            ".png": "a figure", ".csv": "a table"}


def write_failed(path: Path, error: OSError) -> OutputError:
    """The one-line error of a failed write: which file, what it held, why, and what to do."""
    reason = error.strerror or " ".join(str(error).split())
    return OutputError(f"{path} could not be written ({CONTENTS.get(path.suffix, 'a file')}): "
                       f"{reason}; the files written before it are kept: make room, then run "
                       f"the same command again to resume")


#: The name ``new_temporary`` gives a temporary file: the final name between a dot and a dot
#: and eight hexadecimal digits.
TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{8}")


def new_temporary(path: Path) -> str:
    """A new, empty hidden file beside ``path``, made as any new file of this user is made.

    ``os.open`` with mode 0666 lets the system take the user's umask off (0644 with the usual
    umask 022); ``tempfile.mkstemp`` would make it 0600, readable by its owner alone.
    """
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}"
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return str(temporary)
        except FileExistsError:  # the name is taken (a file left by a killed write): draw again
            continue


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then rename the result onto ``path`` in one step.

    A write that fails for the system's reasons (``OSError``: a full disk) is an ``OutputError``
    naming ``path``; the temporary file is removed and ``path`` keeps what it held.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = new_temporary(path)
    except OSError as error:
        raise write_failed(path, error) from None
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        os.unlink(temporary)
        if isinstance(error, OSError):
            raise write_failed(path, error) from None
        raise


def save_tensors(state: dict, temporary: str) -> None:
    """``torch.save``, whose failure to write is an ``OSError`` like any other file's.

    torch reports a full disk as a ``RuntimeError`` from its zip writer ("unexpected pos ...").
    """
    try:
        torch.save(state, temporary)
    except RuntimeError as error:
        raise OSError(errno.EIO, f"torch.save failed, the disk may be full "
                                 f"({' '.join(str(error).split())[:80]})") from error


def write_json(path: Path, payload) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    def dump(temporary: str) -> None:
        with open(temporary, "w") as handle:
            json.dump(payload, handle, indent=1)

    atomic_write(path, dump)


# --- reading files: data with a checked schema, never code ------------------------------------------

#: What a field of a file may hold, by the words an error message uses for it.
KINDS: dict[str, Callable[[Any], bool]] = {
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "a number or null": lambda v: v is None or KINDS["a number"](v),
    "true or false": lambda v: isinstance(v, bool),
    "a text": lambda v: isinstance(v, str),
    "a list": lambda v: isinstance(v, list),
    "an object": lambda v: isinstance(v, dict),
    "a tensor": lambda v: isinstance(v, torch.Tensor),
}

METRICS_FIELDS = {"config": "an object", "rounds": "a list", "summary": "an object",
                  "finished": "true or false"}
SUMMARY_FIELDS = {"rounds": "an integer", "final_test_accuracy": "a number",
                  "total_seconds": "a number"}
CHECKPOINT_FIELDS = {"config": "an object", "federation": "an object"}
FEDERATION_FIELDS = {"global": "a tensor", "history": "a list", "clients": "a list",
                     "rng": "an object"}


def unusable(path: Path, problem: str, remedy: str = DELETE_OR_MOVE) -> ValueError:
    """The one-line error for a file that cannot be used: which file, what is wrong, what to do."""
    return ValueError(f"{path} cannot be used: {problem}; {remedy}")


def check_fields(path: Path, record: Any, fields: dict[str, str], where: str = "it") -> dict:
    """``record`` itself if it is an object with every one of ``fields`` of the right kind."""
    if not isinstance(record, dict):
        raise unusable(path, f"{where} holds {type(record).__name__}, not an object (not written "
                             f"by fltutor)")
    for name, kind in fields.items():
        if name not in record:
            raise unusable(path, f"{where} has no {name!r} (not written by this fltutor)")
        if not KINDS[kind](record[name]):
            raise unusable(path, f"{where} holds {name}={record[name]!r:.60}, which must be {kind}")
    return record


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; a one-line error naming the file if it is not JSON."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise unusable(path, "it is not text (damaged, or not written by fltutor)") from None
    if not text.strip():
        raise unusable(path, "it is empty (a copy or a disk that failed part-way)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise unusable(path, f"it is not valid JSON ({error}); it is truncated, damaged or not "
                             f"written by fltutor") from None


def read_metrics(out_dir: Path) -> dict | None:
    """``out_dir``'s metrics.json, checked; None if there is none."""
    path = out_dir / METRICS
    if not path.exists():
        return None
    metrics = check_fields(path, read_json(path), METRICS_FIELDS)
    check_fields(path, metrics["summary"], SUMMARY_FIELDS, "its 'summary'")
    return metrics


def read_checkpoint(out_dir: Path) -> dict | None:
    """``out_dir``'s checkpoint, checked; None if there is none.

    ``weights_only=True`` unpickles tensors and plain values only: a planted file whose pickle
    would build some other object (and run code while doing so) is refused instead.
    """
    path = out_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise unusable(path, "it is damaged, or holds objects other than tensors and plain values, "
                             "which fltutor never writes and refuses to unpickle (nothing in it "
                             "was run)") from None
    except Exception as error:  # any other failure to read it: EOFError, zip errors, KeyError...
        raise unusable(path, f"it is not a readable checkpoint ({type(error).__name__}); it is "
                             f"empty, truncated or not written by fltutor") from None
    check_fields(path, state, CHECKPOINT_FIELDS)
    check_fields(path, state["federation"], FEDERATION_FIELDS, "its 'federation'")
    return state


# --- which run a folder holds -------------------------------------------------------------------

def config_json(config: FedConfig) -> dict:
    """A config as it reads back from JSON (tuples as lists, keys as text): to compare with files."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def differences(held: dict, wanted: dict) -> list[str]:
    """``name=wanted (it holds held)`` for every setting on which two JSON configs differ."""
    return [f"{name}={wanted.get(name)!r} (it holds {held.get(name)!r})"
            for name in sorted(set(held) | set(wanted)) if held.get(name) != wanted.get(name)]


def refuse_other_config(out_dir: Path, file: str, held: dict, config: FedConfig) -> None:
    """Stop unless the config a file of ``out_dir`` records is ``config``: nothing is overwritten."""
    differing = differences(held, config_json(config))
    if differing:
        raise ValueError(f"out={str(out_dir)!r} is not allowed: it holds a run of a different "
                         f"configuration ({file}: {', '.join(differing)}); use another --out, "
                         f"or delete that folder to replace it")


def usable_out_dir(out_dir: str | Path, command: str | None = None) -> Path:
    """``out_dir`` as a Path, once it is known to be a folder this user can write or create.

    With ``command`` (``run_command``, or a sweep's), the folder must also be free for it: not
    another command's (``refuse_other_command``), and no other process writing to it.
    Nothing is created here: a run refused later for another reason leaves no folder behind.
    """
    text = str(out_dir)
    check(text.strip() != "", "out", text, "a folder name (the empty string would mean the "
          "current folder)")
    check(text.isprintable(), "out", text, "a folder name without line breaks or other control "
          "characters (a pasted command's newline, most likely)")
    check_folder("out", text)
    path = Path(out_dir)
    nearest = next(folder for folder in (path, *path.parents) if folder.exists())
    try:  # a real test: permissions alone do not tell (root ignores them; a disk may be read-only)
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as error:
        raise ValueError(f"out={text!r} is not allowed: it must be a folder this user can "
                         f"write ({error.strerror})") from None
    if command is not None and path.is_dir():
        refuse_other_command(path, command)
        refuse_if_held(path)
    return path


# --- one writer per folder ----------------------------------------------------------------------

#: The command that makes each kind of run, by the name of its configuration's class (this
#: module cannot import the recipes: they import it).
RUN_COMMANDS = {"FedConfig": "fedavg", "CRPAConfig": "crpa", "ByzantineConfig": "byzantine",
                "CuriousConfig": "curious", "InversionConfig": "invert"}


def run_command(config: Any) -> str:
    """The fltutor command that makes a run of ``config`` (its class's name, for another)."""
    name = type(config).__name__
    return RUN_COMMANDS.get(name, name)


def lock_record(out_dir: Path) -> dict:
    """What ``out_dir``'s lock file records: ``command`` and the ``pid`` of its last writer.

    Empty if there is none, or if it cannot be read (a writer may be filling it in): the record
    only makes messages clearer; the lock itself is the kernel's.
    """
    try:
        record = json.loads((out_dir / LOCK).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def refuse_other_command(out_dir: Path, command: str) -> None:
    """Stop unless ``out_dir`` is new or holds the output of ``command``.

    The lock file names the command that wrote the folder; a folder written before fltutor kept
    one is told by its files: ``sweep.json`` is a sweep's, ``metrics.json`` or the checkpoint a
    single run's. A sweep would otherwise mix its runs with another's results, and a run would
    scatter its files among a sweep's.
    """
    held = lock_record(out_dir).get("command")
    if held is not None and held != command:
        raise ValueError(f"out={str(out_dir)!r} is not allowed: it holds the output of `fltutor "
                         f"{held}` ({LOCK}), not of `fltutor {command}`; use another --out")
    is_sweep = command.startswith("sweep ")
    marks = (METRICS, CHECKPOINT) if is_sweep else (SETTINGS,)
    mark = next((name for name in marks if (out_dir / name).exists()), None)
    if mark is not None:
        held = "a single run" if is_sweep else "a sweep"
        raise ValueError(f"out={str(out_dir)!r} is not allowed: it holds {held} ({mark}), not "
                         f"the output of `fltutor {command}`; use another --out")


def take_lock(descriptor: int) -> bool:
    """Lock the open file ``descriptor`` for this process alone; False if another holds it.

    ``flock`` does not wait (``LOCK_NB``): a second writer is told at once. The kernel lets go
    of the lock when its holder closes the file or ends, however it ends (``kill -9``, a crash).
    """
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def held_by_another(out_dir: Path) -> ValueError:
    """The one-line refusal of a folder another process writes to, naming that process."""
    record = lock_record(out_dir)
    holder = (f"process {record['pid']} (`fltutor {record.get('command')}`)" if "pid" in record
              else "another process")
    return ValueError(f"out={str(out_dir)!r} is not allowed: {holder} is writing to it now; "
                      f"wait until it ends, or use another --out")


def refuse_if_held(out_dir: Path) -> None:
    """Stop if another process holds ``out_dir``'s lock now; takes and creates nothing."""
    try:
        descriptor = os.open(out_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        if not take_lock(descriptor):
            raise held_by_another(out_dir)
    finally:
        os.close(descriptor)  # lets go of the lock if it was taken


def remove_stale_temporaries(out_dir: Path) -> list[str]:
    """Remove the temporary files of killed writes from ``out_dir``; their names.

    Called by the folder's lock holder only: no other process writes there, so every temporary
    file in it is one that a killed writer left half-written.
    """
    stale = [path for path in out_dir.iterdir()
             if TEMPORARY_NAME.fullmatch(path.name) and path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return [path.name for path in stale]


@contextmanager
def writing_to(out_dir: Path, command: str) -> Iterator[Path]:
    """Hold ``out_dir`` for ``command`` while the body writes to it: the folder's one writer.

    The lock is ``flock`` on the folder's lock file (``take_lock``): another process is refused
    at once, and a writer that dies lets go without help, so a killed run never blocks the next.
    Once the lock is held, the folder is checked to be ``command``'s (another process may have
    written it since it was first checked), the lock file records ``command`` and this
    process's PID (so that a refused process can name the holder), and temporary files left
    by killed writes are removed. The lock file itself stays: a process that opened it before
    its removal would lock a file no other process sees.
    """
    path = out_dir / LOCK
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise write_failed(path, error) from None
    try:
        if not take_lock(descriptor):
            raise held_by_another(out_dir)
        refuse_other_command(out_dir, command)
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, json.dumps({"command": command, "pid": os.getpid()}).encode())
        except OSError as error:
            raise write_failed(path, error) from None
        remove_stale_temporaries(out_dir)
        yield out_dir
    finally:
        os.close(descriptor)  # lets go of the lock


def claim_out_dir(out_dir: str | Path, config: FedConfig, force: bool = False) -> dict | None:
    """Check that ``out_dir`` may take the run of ``config``, before any data is loaded.

    Returns the metrics of this very run if the folder holds it finished (and ``force`` is off):
    there is nothing left to compute. Refuses an unusable folder, a damaged file, a folder
    holding another configuration's run or another command's output, and a folder that another
    process writes to.
    """
    check(isinstance(force, bool), "force", force, "True or False")
    out_dir = usable_out_dir(out_dir, run_command(config))
    metrics = read_metrics(out_dir)
    if metrics is not None:
        refuse_other_config(out_dir, METRICS, metrics["config"], config)
    checkpoint = read_checkpoint(out_dir)
    if checkpoint is not None:
        refuse_other_config(out_dir, CHECKPOINT, checkpoint["config"], config)
    if metrics is not None and metrics["finished"]:
        if not force:
            print(f"{out_dir} already holds this run, finished: nothing recomputed (to run it "
                  f"again: --force, or force=True)")
            return metrics
        (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return None


def resume(federation: Federation, out_dir: Path) -> None:
    """Load ``out_dir``'s checkpoint into ``federation`` if there is one; refuse a foreign one.

    The configuration it records is compared first; only then is any of its state used.
    """
    state = read_checkpoint(out_dir)
    if state is None:
        return
    refuse_other_config(out_dir, CHECKPOINT, state["config"], federation.config)
    try:
        federation.load_state_dict(state["federation"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
        detail = " ".join(str(error).split())[:80]  # torch's messages span several lines
        raise unusable(out_dir / CHECKPOINT, f"its state does not fit this run "
                                             f"({type(error).__name__}: {detail})") from None
    print(f"resuming {out_dir} after round {federation.rounds_done}")


def save_progress(federation: Federation, out_dir: Path, extra: dict | None = None) -> None:
    """Write metrics.json and the checkpoint for the rounds done so far."""
    state = {"config": config_json(federation.config), "federation": federation.state_dict()}
    atomic_write(out_dir / CHECKPOINT, lambda temporary: save_tensors(state, temporary))
    write_json(out_dir / METRICS, results(federation, extra))


def results(federation: Federation, extra: dict | None = None, finished: bool = False) -> dict:
    """The content of metrics.json."""
    return {
        "config": config_json(federation.config),
        "data_source": federation.data.source,
        "partition": federation.class_counts().tolist(),
        "rounds": federation.history,
        "summary": {**federation.summary(), **(extra or {})},
        "finished": finished,
    }


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure as PNG, atomically, and release it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))
    plt.close(figure)


def run_to_disk(federation: Federation, out_dir: str | Path, progress: bool = True,
                extra_summary: Callable[[Federation], dict] | None = None,
                finish: Callable[[Federation, dict, Path], None] | None = None,
                force: bool = False,
                after_round: Callable[[Federation], None] | None = None) -> dict:
    """Run ``federation`` to its configured number of rounds, saving after every round.

    Returns the final content of metrics.json (that of the finished run already in ``out_dir``,
    if there is one and ``force`` is off). ``extra_summary`` adds numbers to the summary (an
    attack adds its AAA, for instance); ``finish(federation, final, out_dir)`` draws the figures
    of a kind of run and may add to ``final``, before the run is marked finished.
    ``after_round(federation)`` is called after each round is saved (to show progress).
    """
    finished = claim_out_dir(out_dir, federation.config, force)
    if finished is not None:
        return finished
    return run_in_claimed_dir(federation, Path(out_dir), progress, extra_summary, finish,
                              after_round)


def run_in_claimed_dir(federation: Federation, out_dir: Path, progress: bool = True,
                       extra_summary: Callable[[Federation], dict] | None = None,
                       finish: Callable[[Federation, dict, Path], None] | None = None,
                       after_round: Callable[[Federation], None] | None = None) -> dict:
    """``run_to_disk`` in a folder that ``claim_out_dir`` has checked already (and left to run).

    The commands claim their folder before they load any data, so that a finished run costs
    nothing; they then come here, and write while they hold the folder's lock (``writing_to``).
    """
    check(isinstance(progress, bool), "progress", progress, "True or False")
    with writing_to(out_dir, run_command(federation.config)):
        resume(federation, out_dir)
        summarise = extra_summary or (lambda _: {})

        def save(fed: Federation) -> None:
            save_progress(fed, out_dir, summarise(fed))
            if after_round is not None:
                after_round(fed)

        federation.run(progress=progress, after_round=save)
        final = results(federation, summarise(federation))
        save_figure(metric_curves({"global model": federation.history}),
                    out_dir / "accuracy.png")
        save_figure(partition_heatmap(federation.class_counts(),
                                      list(federation.data.class_names)),
                    out_dir / "partition.png")
        if finish is not None:
            finish(federation, final, out_dir)
        final["finished"] = True
        write_json(out_dir / METRICS, final)
        (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return final


def run_fedavg(config: FedConfig, out_dir: str | Path, progress: bool = True,
               force: bool = False) -> dict:
    """Plain federated averaging from a config, to ``out_dir`` (the ``fltutor fedavg`` command).

    The folder is checked before the data is loaded; a finished run there is kept (see the
    module's rules; ``force=True`` runs it again).
    """
    finished = claim_out_dir(out_dir, config, force)
    if finished is not None:
        return finished
    return run_in_claimed_dir(Federation.build(config), Path(out_dir), progress)
