"""The README, run as a new user runs it: its own ```bash and ```python blocks, in its order, in a
fresh copy of the repository, with no MLFLOW_TRACKING_URI and no PREFECT_API_URL.

Nothing here retypes a README command: each one is read from README.md and run through ``bash``
in the copy's folder (exports of its block first, as in the user's terminal). What each command
is said to do is read from the README too (its trailing ``# ...`` comment, the example summary,
the snippet's commented output) and checked through an explicit table of claims; a comment the
table does not know fails the test, so a README change cannot silently go unchecked.

The copy: the files of ``git ls-files --cached --others --exclude-standard`` (uncommitted edits
included), committed in a new git repository so that ``git status --ignored`` shows what the
commands left behind. ``PYTHONPATH`` is the copy: the editable install maps ``flows``, ``tasks``
and ``normflow`` to this checkout (its finder comes after the path finder), and a script run by
path only puts its own folder (``flows/``) on ``sys.path``, so without it the copy's scripts would
import this checkout's packages. With it they import the copy's, as after ``pip install -e .`` in
a fresh clone. Data and store paths resolve in the copy's folder either way.

One module-scoped ``readme`` runs the sections in README order, each once, on first use; one test
per section checks what it recorded. Two steps are not README lines verbatim, and say so where
they run: the training the snippet's second commented output names (``--normalization whiten``,
registered), run after the server and before the promote block, which needs two versions; and the
promote block's example ``--version 3``, which stands for the version that is not champion.
``mlflow models serve`` gets a free port instead of 5001. About 4 minutes on 2 cores (each command
is ~20 s of imports and Prefect's temporary server); ``python bench/run.py --quick`` is its own
test, about 2 minutes more (``-k "not benchmarks"`` leaves it out).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import REPO, LocalServer, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.xdist_group("readme"),
]  # sections run once, in order

README_PATH = REPO / "README.md"
COMMAND_TIMEOUT = 600

# What the commands may leave in the copy: the store, and the outputs the README names (the
# predict block's out.csv, the study's reports/study-<timestamp>/). __pycache__/ is Python's own
# (git-ignored). bench/data/ is allowed only after the benchmark (see test_benchmarks_quick).
ALLOWED_LEFTOVERS = ("mlruns/", "out.csv", "reports/")
BENCH_LEFTOVERS = ("bench/data/",)

# Every ```bash block of the README, by a command it holds, and what this test does with it.
BASH_BLOCKS = {
    "python -m pip install -e": "run the train line (the install is this environment's; pytest is this suite)",
    "mlflow models serve": "run: server on a free port, then the curl lines",
    "prefect server start": "skipped: a persistent Prefect server and a worker (test_retraining.py covers it)",
    "python flows/retrain_flow.py": "skipped: serves until Ctrl-C, needs PREFECT_API_URL (test_retraining.py)",
    "python flows/promote.py": "run, every line",
    "python flows/predict_flow.py --input data/new_houses.csv": "run",
    "python flows/study_flow.py": "run the first line (the second needs my.csv)",
    "python flows/train_flow.py --data 'big/*.csv'": "skipped: needs big/ and a Dask cluster (test_dask.py)",
    "mlflow ui": "skipped: a UI to look at (the summary's MLflow UI line is checked in the quick start)",
    "python flows/train_flow.py --normalization none": "run, every line",
    "python bench/run.py": "run --quick, in test_benchmarks_quick",
}

NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


# ---------------------------------------------------------------------------------------------
# Reading the README


@dataclass
class Block:
    lang: str
    text: str
    line: int  # README line of the opening fence
    section: str  # the "## " heading it is under


@dataclass
class Command:
    text: str  # continuation lines joined, trailing comment removed
    comment: str  # the trailing comment and any comment-only lines right under the command
    line: int


def readme_text() -> str:
    return README_PATH.read_text()


def fenced_blocks(text: str) -> list[Block]:
    blocks, section, fence = [], "", None
    for number, line in enumerate(text.splitlines(), 1):
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("```"):
                fence = (line[3:].strip(), number, [])
        elif line.startswith("```"):
            blocks.append(Block(fence[0], "\n".join(fence[2]) + "\n", fence[1], section))
            fence = None
        else:
            fence[2].append(line)
    return blocks


def split_comment(line: str) -> tuple[str, str]:
    """Code and trailing comment of a shell line: a ``#`` starting a word outside quotes."""
    quote, i = None, 0
    while i < len(line):
        c = line[i]
        if quote in ("'",):
            quote = None if c == "'" else quote
        elif quote in ('"', "$'"):
            if c == "\\":
                i += 1
            elif c == ('"' if quote == '"' else "'"):
                quote = None
        elif c == "\\":
            i += 1
        elif c == "'":
            quote = "$'" if i and line[i - 1] == "$" else "'"
        elif c == '"':
            quote = '"'
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
        i += 1
    return line.rstrip(), ""


def commands(block: Block) -> list[Command]:
    found: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        code, comment = split_comment(lines[i])
        start = i
        while code.endswith("\\") and not comment and i + 1 < len(lines):  # bash drops backslash-newline
            i += 1
            more, comment = split_comment(lines[i])
            code = code[:-1] + more
        i += 1
        if code.strip():
            found.append(Command(code.strip(), comment, block.line + 1 + start))
        elif comment and found:  # a comment line under a command: what it answers
            found[-1].comment = f"{found[-1].comment} {comment}".strip()
    return found


def bash_block(key: str) -> Block:
    """The one ```bash block holding a command that starts with ``key``."""
    matching = [
        b for b in fenced_blocks(readme_text()) if b.lang == "bash" and any(c.text.startswith(key) for c in commands(b))
    ]
    assert len(matching) == 1, f"README: expected one ```bash block with a line starting {key!r}, found {len(matching)}"
    return matching[0]


def command_in(block: Block, key: str) -> Command:
    found = [c for c in commands(block) if c.text.startswith(key)]
    assert found, f"README line {block.line}: no command starting {key!r} in this block"
    return found[0]


def untyped_block_starting(prefix: str) -> Block:
    found = [b for b in fenced_blocks(readme_text()) if b.lang == "" and b.text.startswith(prefix)]
    assert found, f"README: no ``` block starting {prefix!r}"
    return found[0]


def section_prose(heading_start: str) -> str:
    text = readme_text()
    start = text.index("\n## " + heading_start)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def snippet_block() -> Block:
    found = [
        b
        for b in fenced_blocks(readme_text())
        if b.lang == "python" and b.section.startswith("Use the registered model")
    ]
    assert len(found) == 1, "README: expected one ```python block under 'Use the registered model'"
    return found[0]


def model_name() -> str:
    """The registered model the quick start names (``registers `normflow-linear@champion```)."""
    found = re.search(r"registers\s+`([^`@]+)@champion`", readme_text())
    assert found, "README: the quick start no longer says which model it registers"
    return found.group(1)


# ---------------------------------------------------------------------------------------------
# Comparing output with what the README shows


def agrees_to_shown_digits(actual: str | float, shown: str) -> bool:
    """``actual`` rounded to the significant digits ``shown`` has is ``shown`` (635.2101 vs 635.21)."""
    mantissa = shown.lower().lstrip("+-").split("e")[0]
    digits = len(mantissa.replace(".", "").lstrip("0")) or 1
    return float(f"{float(actual):.{digits}g}") == float(shown)


def compare_words_and_numbers(actual: str, shown: str, numbers: bool = True) -> bool:
    """Same words; numbers agree to the digits the README shows (or are not compared)."""
    pattern = rf"(?<![\d.])({NUMBER})"
    a, s = re.split(pattern, actual), re.split(pattern, shown)
    if len(a) != len(s):
        return False
    for index, (x, y) in enumerate(zip(a, s, strict=True)):
        if index % 2 == 0:
            if " ".join(x.split()) != " ".join(y.split()):
                return False
        elif numbers and not agrees_to_shown_digits(x, y):
            return False
    return True


def summary_fields(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Header line and (label, value) pairs of a summary; indented lines continue a value."""
    lines = text.rstrip("\n").splitlines()
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        labelled = re.match(r"^  (\S[^:]*):\s+(.*)$", line)
        if labelled:
            fields.append((labelled.group(1), labelled.group(2)))
        elif fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + "\n" + line.strip())
    return (lines[0] if lines else ""), fields


def summary_mismatches(actual: str, example: str, clone: str, copy: Path, device: str) -> list[str]:
    """Where a training summary differs from the README's example summary.

    Run ids differ; paths are the README's clone folder moved to the copy; the device is this
    machine's; ``fit`` and ``final loss`` are rounding noise (1e-16, 1e-10) whose digits are one
    machine's, so there only the words are compared; every other number agrees to the digits shown.
    """
    head, got = summary_fields(actual)
    example_head, want = summary_fields(example)
    problems = [] if head == example_head else [f"first line {head!r}, README {example_head!r}"]
    if [label for label, _ in got] != [label for label, _ in want]:
        problems.append(f"labels {[label for label, _ in got]}, README {[label for label, _ in want]}")
    shown_for = dict(want)
    for label, value in got:
        if label not in shown_for:
            continue
        shown = shown_for[label]
        if label == "run id":
            ok = re.fullmatch(r"[0-9a-f]{32}", value) is not None
        elif clone in shown:
            shown = shown.replace(clone, str(copy))
            ok = value == shown
        else:
            if device != "cpu":
                shown = re.sub(r"\bon cpu\b", f"on {device}", shown)
            ok = compare_words_and_numbers(value, shown, numbers=label not in ("fit", "final loss"))
        if not ok:
            problems.append(f"{label}: {value!r}, README {shown!r}")
    return problems


def json_claim(text: str):
    """A JSON answer as the README writes it: ``36.0...`` is a number shown to those decimals."""
    shown: list[str] = []

    def hold(match: re.Match) -> str:
        shown.append(match.group(1))
        return json.dumps(f"\0{len(shown) - 1}")

    return json.loads(re.sub(r"(\d+(?:\.\d+)?)\.\.\.", hold, text)), shown


def answer_agrees(actual, claim, shown: list[str]) -> bool:
    """``actual`` has what the README shows (a shown object's keys; MLflow may add others)."""
    if isinstance(claim, str) and claim.startswith("\0"):
        number = shown[int(claim[1:])]
        decimals = len(number.split(".")[1]) if "." in number else 0
        return isinstance(actual, (int, float)) and round(actual, decimals) == float(number)
    if isinstance(claim, dict):
        return isinstance(actual, dict) and all(
            k in actual and answer_agrees(actual[k], v, shown) for k, v in claim.items()
        )
    if isinstance(claim, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(claim)
            and all(answer_agrees(a, c, shown) for a, c in zip(actual, claim, strict=True))
        )
    return actual == claim


def array_numbers(text: str) -> list[float] | None:
    found = re.findall(r"array\(\[([^\]]*)\]\)", text)
    return [float(x) for x in re.findall(NUMBER, found[-1])] if found else None


# ---------------------------------------------------------------------------------------------
# The new user


@dataclass
class Result:
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    left: list[str] = field(default_factory=list)  # `git status` entries that appeared during it

    def __str__(self) -> str:
        left = f"\nleft behind: {self.left}" if self.left else ""
        return (
            f"$ {self.command}\nexit {self.returncode} after {self.seconds:.0f} s{left}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )

    def lines(self, stream: str = "stdout") -> list[str]:
        return [line for line in getattr(self, stream).splitlines() if line.strip()]


@dataclass
class RegistryState:
    aliases: dict[str, str]
    tags: dict[str, str]
    versions: list[str]

    @property
    def champion(self) -> str | None:
        return self.aliases.get("champion")

    @property
    def previous(self) -> str | None:
        return self.aliases.get("previous-champion")


# In the REPL, an expression statement's value is printed; the README's snippet is written so
# (its last line's value is the commented array).
AS_IN_THE_REPL = (
    "import ast, sys\n"
    "namespace = {'__name__': '__main__'}\n"
    "for node in ast.parse(sys.argv[1]).body:\n"
    "    exec(compile(ast.Interactive(body=[node]), '<README>', 'single'), namespace)\n"
)


class NewUser:
    """A fresh copy of the repository and a clean environment; runs README commands there."""

    SECTIONS = (
        "quick start",
        "python snippet",
        "model server",
        "second model",
        "promote",
        "predict",
        "study",
        "tutorial",
    )

    def __init__(self, root: Path):
        self.copy = root / "normflow"  # the README's example clone is /home/you/normflow
        self.copy.mkdir()
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=REPO,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .split("\0")
        )
        for name in filter(None, listed):
            source = REPO / name
            if source.is_file() or source.is_symlink():  # a tracked file deleted in the work tree is gone
                (self.copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.copy / name, follow_symlinks=False)
        self.git("init", "-q")
        self.git("add", "-A", "-f")
        self.git(
            "-c",
            "user.name=readme",
            "-c",
            "user.email=readme@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "the repository as a new user gets it",
        )
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and not k.startswith("PREFECT_API_")
        }
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.copy), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.store_uri = f"sqlite:///{self.copy / 'mlruns' / 'mlflow.db'}"
        self.model = model_name()
        self.records: dict[str, object] = {}
        self.snippet_outputs: dict[str, list[float]] = {}  # registered version -> the snippet's predictions

    # -- plumbing

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.copy, capture_output=True, text=True, check=True).stdout

    def status(self) -> list[str]:
        return [line[3:] for line in self.git("status", "--ignored", "--porcelain").splitlines()]

    def run(self, argv: list[str], label: str, timeout: float = COMMAND_TIMEOUT) -> Result:
        """``argv`` in the copy's folder, in its own process group (all of it killed on a timeout)."""
        before = set(self.status())
        start = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=self.copy,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            stderr += f"\n(killed: still running after {timeout} s)"
        return Result(
            label, process.returncode, stdout, stderr, time.monotonic() - start, sorted(set(self.status()) - before)
        )

    def shell(self, command: str, exports: list[str] = ()) -> Result:
        """A README command line, through bash, after the export lines of its block."""
        return self.run(["bash", "-c", "\n".join(["set -e", *exports, command])], command)

    def registry(self) -> RegistryState:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.store_uri, registry_uri=self.store_uri)
        model = client.get_registered_model(self.model)
        versions = sorted((v.version for v in client.search_model_versions(f"name='{self.model}'")), key=int)
        return RegistryState(
            {alias: str(v) for alias, v in model.aliases.items()}, dict(model.tags), [str(v) for v in versions]
        )

    def run_all(self) -> None:
        """Every section (that has not run yet), recording failures."""
        for name in self.SECTIONS:
            try:
                self.section(name)
            except Exception:
                pass

    def section(self, name: str):
        """What ``name`` recorded; the sections before it run first, each once."""
        for earlier in self.SECTIONS[: self.SECTIONS.index(name) + 1]:
            if earlier not in self.records:
                try:
                    self.records[earlier] = getattr(self, "run_" + earlier.replace(" ", "_"))()
                except Exception as exc:
                    self.records[earlier] = exc
        record = self.records[name]
        if isinstance(record, Exception):
            raise record
        return record

    # -- the sections, in README order

    def run_quick_start(self) -> Result:
        return self.shell(command_in(bash_block("python -m pip install -e"), "python flows/train_flow.py").text)

    def snippet(self) -> tuple[Result, list[float] | None]:
        result = self.run(
            ["python", "-c", AS_IN_THE_REPL, snippet_block().text],
            "python (the README's snippet, statement by statement as in the REPL)",
        )
        return result, array_numbers(result.stdout)

    def snippet_steps(self, default_run: bool) -> list[dict]:
        """The snippet against each champion its commented outputs name: the quick start's (``default
        run``), or, for a line labelled with flags (``--normalization whiten: ...``), the champion of
        the quick start's command trained with those flags."""
        train = command_in(bash_block("python -m pip install -e"), "python flows/train_flow.py").text
        steps = []
        for line in snippet_block().text.splitlines():
            shown = re.match(r"^#\s*(array\(\[[^\]]*\]\))\s*\((.*)\)\s*$", line)
            if not shown:
                continue
            expected, label = array_numbers(shown.group(1)), shown.group(2)
            if not (label.startswith("default run") or label.startswith("--")):
                raise AssertionError(
                    f"README: snippet output labelled {label!r}; the test knows 'default run' and '--flags:'"
                )
            if label.startswith("default run") != default_run:
                continue
            training = None if default_run else self.shell(f"{train} {label.split(':')[0].strip()}")
            result, predictions = self.snippet()
            champion = self.registry().champion
            if predictions is not None:
                self.snippet_outputs[champion] = predictions
            steps.append(
                {
                    "label": label,
                    "expected": expected,
                    "training": training,
                    "result": result,
                    "predictions": predictions,
                    "champion": champion,
                }
            )
        return steps

    def run_python_snippet(self) -> list[dict]:
        return self.snippet_steps(default_run=True)

    def run_second_model(self) -> list[dict]:
        """The snippet's other commented outputs, after the trainings they name: in README order
        after the server (which serves the quick start's model, as a new user's would), before the
        promote block, which needs a second version."""
        return self.snippet_steps(default_run=False)

    def run_model_server(self) -> dict:
        # The README serves on port 5001; a free port stands in for it in every line of the block,
        # so that a busy 5001 (another test, another program) cannot fail or fool the test.
        port = free_port()
        block = bash_block("mlflow models serve")
        exports, answers, server, started, log = [], [], None, None, ""
        before = set(self.status())
        try:
            for command in commands(block):
                text = re.sub(r"\b5001\b", str(port), command.text)
                if text.startswith("export "):
                    exports.append(text)
                elif text.startswith("mlflow models serve"):
                    assert "--host" not in text and " -h " not in text, (
                        "the test expects MLflow's default host 127.0.0.1"
                    )
                    script = "\n".join(["set -e", f"cd {shlex.quote(str(self.copy))}", *exports, "exec " + text])
                    started = text
                    try:  # in its own session; stop() ends its whole process group
                        server = LocalServer(
                            ["bash", "-c", script], f"http://127.0.0.1:{port}/ping", env=self.env, timeout=120
                        )
                    except RuntimeError as exc:
                        log = str(exc)
                        break
                elif text.startswith("curl "):
                    # -w adds the status code after the body; the README's request is unchanged.
                    answer = self.shell(text + " -w '\\n%{http_code}'", exports)
                    body, _, code = answer.stdout.rpartition("\n")
                    answers.append({"command": command, "result": answer, "body": body, "status": code})
                else:
                    raise AssertionError(f"README line {command.line}: the test does not know how to run {text!r}")
        finally:
            if server is not None:
                log = server.output()
                server.stop()
        return {
            "server": started,
            "up": server is not None,
            "log": log,
            "answers": answers,
            "champion": self.registry().champion,
            "left": sorted(set(self.status()) - before),
        }

    def run_promote(self) -> list[dict]:
        """Every line in order. The README's example version (``--version 3``) is not registered
        here: it stands for the version that is not champion when that line first runs."""
        steps, standin = [], {}
        for command in commands(bash_block("python flows/promote.py")):
            text, comment = command.text, command.comment
            example = re.search(r"--version (\d+)", text)
            before = self.registry()
            if example and example.group(1) not in before.versions:
                number = example.group(1)
                if number not in standin:
                    others = [v for v in before.versions if v != before.champion]
                    assert others, f"no version other than the champion to stand in for version {number}: {before}"
                    standin[number] = others[-1]
                text = text.replace(f"--version {number}", f"--version {standin[number]}")
                comment = re.sub(rf"\bversion {number}\b", f"version {standin[number]}", comment)
            result = self.shell(text)
            steps.append(
                {"command": command, "comment": comment, "result": result, "before": before, "after": self.registry()}
            )
        return steps

    def run_predict(self) -> dict:
        command = command_in(
            bash_block("python flows/predict_flow.py --input data/new_houses.csv"), "python flows/predict_flow.py"
        )
        champion = self.registry().champion
        result = self.shell(command.text)
        flags = dict(re.findall(r"--(input|output) (\S+)", command.text))
        return {
            "result": result,
            "champion": champion,
            "input": self.copy / flags["input"],
            "output": self.copy / flags["output"],
        }

    def run_study(self) -> dict:
        command = commands(bash_block("python flows/study_flow.py"))[0]
        return {"command": command, "result": self.shell(command.text)}

    def run_tutorial(self) -> list[tuple[Command, Result]]:
        return [
            (c, self.shell(c.text)) for c in commands(bash_block("python flows/train_flow.py --normalization none"))
        ]


@pytest.fixture(scope="module")
def readme(tmp_path_factory) -> NewUser:
    return NewUser(tmp_path_factory.mktemp("readme"))


def succeeded(result: Result) -> None:
    """Exit 0, and (README: Prefect's and MLflow's own log lines only with --verbose) nothing on stderr."""
    assert result.returncode == 0, str(result)
    assert result.stderr.strip() == "", f"stderr on success:\n{result}"


# ---------------------------------------------------------------------------------------------
# The tests, one per README section


def test_every_readme_bash_block_is_run_or_skipped_for_a_stated_reason():
    blocks = [b for b in fenced_blocks(readme_text()) if b.lang == "bash"]
    for block in blocks:
        keys = [k for k in BASH_BLOCKS if any(c.text.startswith(k) for c in commands(block))]
        assert len(keys) == 1, (
            f"README line {block.line}: a ```bash block this test does not know (add it to BASH_BLOCKS): {block.text}"
        )
    for key in BASH_BLOCKS:
        bash_block(key)
    assert [b for b in fenced_blocks(readme_text()) if b.lang == "python"], "README: the ```python snippet is gone"


def test_quick_start_trains_and_prints_the_readme_summary(readme):
    result = readme.section("quick start")
    succeeded(result)
    example = untyped_block_starting("normflow: training finished").text
    clone = re.search(r"data:\s+(\S+)/data/houses\.csv", example).group(1)  # /home/you/normflow
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert summary_mismatches(result.stdout, example, clone, readme.copy, device) == [], str(result)
    # the default store, in the folder the command ran from
    assert (readme.copy / "mlruns" / "mlflow.db").is_file()


def _check_snippet_steps(steps: list[dict]) -> None:
    for step in steps:
        if step["training"] is not None:
            succeeded(step["training"])
        assert step["result"].returncode == 0, str(step["result"])
        assert step["predictions"] is not None, f"no array printed:\n{step['result']}"
        # 1e-6, not 1e-4: the two commented arrays differ by 3e-5 to 6e-5, and the check must tell
        # the default run's champion from the whiten one's.
        assert step["predictions"] == pytest.approx(step["expected"], abs=1e-6), (step["label"], str(step["result"]))


def test_python_snippet_predicts_the_default_runs_array(readme):
    steps = readme.section("python snippet")
    assert len(steps) == 1, "README: the snippet shows one output for the default run"
    _check_snippet_steps(steps)
    assert steps[0]["champion"] == "1", "the quick start's version is champion"


def test_model_server_answers_as_the_readme_shows(readme):
    record = readme.section("model server")
    assert record["up"], (
        f"`{record['server']}` did not serve (README: the shell user of MLflow's CLI needs "
        f"`export MLFLOW_TRACKING_URI=...`):\n{record['log']}"
    )
    assert record["answers"], "README: no curl lines under `mlflow models serve`"
    assert record["champion"] == readme.section("python snippet")[0]["champion"], "serving the quick start's model"
    for answer in record["answers"]:
        result = answer["result"]
        assert result.returncode == 0, str(result)
        # "[400 ]JSON[ (whiten: 36.0)]": the status (200 unless shown), the answer of the champion a new
        # user serves here (the quick start's), and what another champion would answer (not served).
        claim = re.fullmatch(r"(?:(\d{3}) )?(.*?)(?:\s+\((\w+): ([^)]*)\))?", answer["command"].comment)
        status, body = claim.group(1) or "200", claim.group(2)
        assert answer["status"] == status, f"README line {answer['command'].line} expects HTTP {status}:\n{result}"
        if body:
            expected, shown = json_claim(body)
            assert answer_agrees(json.loads(answer["body"]), expected, shown), (
                f"README line {answer['command'].line}: {body}\nanswer: {answer['body']}"
            )
    assert record["left"] == [], f"the server left {record['left']} in the repository folder"


def test_python_snippet_predicts_the_arrays_of_the_trainings_its_comments_name(readme):
    steps = readme.section("second model")
    assert steps, "README: the snippet shows only the default run's output (the promote check needs a second version)"
    _check_snippet_steps(steps)
    first = int(readme.section("python snippet")[0]["champion"])
    assert [s["champion"] for s in steps] == [str(first + i) for i in range(1, len(steps) + 1)], (
        "each training registers a new version and makes it champion"
    )


def hold_tag() -> str:
    """The model tag the README's promote block says a hold sets."""
    return re.search(r"\(model tag ([\w.]+)\)", bash_block("python flows/promote.py").text).group(1)


# Each promote line's comment, and what it says of the aliases: check(before, after, match, command).
PROMOTE_CLAIMS = {
    r"champion <-> previous-champion": lambda before, after, m, command: (
        after.champion == before.previous and after.previous == before.champion
    ),
    r"make version (\d+) champion \(old champion -> previous-champion\)": lambda before, after, m, command: (
        after.champion == m.group(1) and after.previous == before.champion
    ),
    # "...": the line above's action (this version becomes champion), and the hold tag
    r"\.\.\. and hold it: retrainings stop promoting \(model tag ([\w.]+)\)": lambda before, after, m, command: (
        after.champion == re.search(r"--version (\d+)", command).group(1) and m.group(1) in after.tags
    ),
    r"automation resumes": lambda before, after, m, command: hold_tag() not in after.tags,
}


def test_promote_moves_the_aliases_as_each_line_says(readme):
    steps = readme.section("promote")
    for step in steps:
        result = step["result"]
        assert result.returncode == 0, str(result)
        claims = [(p, re.fullmatch(p, step["comment"])) for p in PROMOTE_CLAIMS]
        claims = [(p, m) for p, m in claims if m]
        assert len(claims) == 1, (
            f"README line {step['command'].line}: comment {step['comment']!r} not in PROMOTE_CLAIMS"
        )
        pattern, match = claims[0]
        assert PROMOTE_CLAIMS[pattern](step["before"], step["after"], match, result.command), (
            f"README line {step['command'].line}: {step['comment']!r}\nbefore {step['before']}\nafter  {step['after']}\n{result}"
        )


def test_predict_scores_with_the_pinned_champion(readme):
    record = readme.section("predict")
    result = record["result"]
    succeeded(result)
    assert result.stdout.startswith("normflow: scoring finished"), str(result)
    # README: the flow resolves models:/NAME@champion once to models:/NAME/VERSION
    assert re.search(rf"^\s*model:\s+models:/{re.escape(readme.model)}/{record['champion']}$", result.stdout, re.M), (
        str(result)
    )
    with open(record["input"], newline="") as handle:
        given = list(csv.DictReader(handle))
    with open(record["output"], newline="") as handle:
        reader = csv.DictReader(handle)
        written = list(reader)
    # every input column, as written, plus `prediction`
    assert reader.fieldnames == [*given[0].keys(), "prediction"]
    assert [{k: row[k] for k in given[0]} for row in written] == given
    # the same model as the snippet's pyfunc load of that version
    assert record["champion"] in readme.snippet_outputs, "the snippet never ran against this champion"
    assert [float(row["prediction"]) for row in written] == pytest.approx(
        readme.snippet_outputs[record["champion"]], abs=1e-8
    )


def test_study_reports_every_normalization_and_learning_rate(readme):
    record = readme.section("study")
    result, command = record["result"], record["command"]
    succeeded(result)
    claim = re.fullmatch(r"tutorial data, every normalization x lr ([\w.,]+)", command.comment)
    assert claim, f"README line {command.line}: comment {command.comment!r} not understood by this test"
    lrs = claim.group(1).split(",")
    # "every normalization": the values of train_flow.py's --normalization flag, from its table row
    row = next(line for line in readme_text().splitlines() if line.startswith("| `--normalization`"))
    normalizations = re.findall(r"`(\w+)`", row.split("|")[3])
    # "tutorial data": data/houses.csv, price from lights and distance
    assert "price from lights, distance" in result.stdout.splitlines()[0], str(result)
    prose = section_prose("See why normalization matters")
    folder = re.search(r"default\s+`(reports/study-)<timestamp>/`", prose).group(1)
    reported = re.search(rf"^report:\s+({folder}\S+)/", result.stdout, re.M)
    assert reported, str(result)
    report = readme.copy / reported.group(1)
    for name in re.findall(r"`(\w+\.(?:png|md|csv))`", prose):
        assert (report / name).is_file(), f"{name} not in {report}"
    with open(report / "grid.csv", newline="") as handle:
        grid = {(r["normalization"], r["lr"].split(" ")[0]) for r in csv.DictReader(handle)}
    assert grid == set(itertools.product(normalizations, lrs))


def _training_line(result: Result) -> str:
    found = re.search(r"^\s*training:\s+(.*)$", result.stdout, re.M)
    return found.group(1) if found else ""


def _epochs(result: Result) -> float:
    """Epochs run (converged or not); infinite for a run that diverged or printed no training line."""
    found = re.search(r"converged after (\d+) epoch", _training_line(result))
    return int(found.group(1)) if found else float("inf")


def _losses(result: Result) -> list[str]:
    return re.findall(rf"epoch \d+: loss ({NUMBER})", result.stdout)


def _converged(result: Result) -> bool:
    line = _training_line(result)
    return result.returncode == 0 and "converged after" in line and "NOT converged" not in line


# The tutorial lines' comments, phrase by phrase: (pattern, check(result, match, previous result)).
TUTORIAL_CLAIMS = [
    (
        rf"one epoch: ({NUMBER}), then ({NUMBER})",
        lambda r, m, p, n: (
            _converged(r)
            and _epochs(r) == 1
            and len(_losses(r)) >= 2
            and all(agrees_to_shown_digits(a, s) for a, s in zip(_losses(r), m.groups(), strict=False))
        ),
    ),
    (
        rf"\(first loss ({NUMBER})\)",
        lambda r, m, p, n: bool(_losses(r)) and agrees_to_shown_digits(_losses(r)[0], m.group(1)),
    ),
    (
        rf"\(({NUMBER}), then ({NUMBER})\)",
        lambda r, m, p, n: (
            len(_losses(r)) >= 2
            and all(agrees_to_shown_digits(a, s) for a, s in zip(_losses(r), m.groups(), strict=False))
        ),
    ),
    (
        r"\bdiverges\b",
        lambda r, m, p, n: (
            bool(r.lines("stderr")) and r.lines("stderr")[-1].startswith("normflow: error: training diverged")
        ),
    ),
    (r"\bexplains why\b", lambda r, m, p, n: bool(r.lines("stderr")) and "Fix:" in r.lines("stderr")[-1]),
    (r"\bexit (\d+)\b", lambda r, m, p, n: r.returncode == int(m.group(1))),
    (
        r"\bNOT converged after (\d+) epochs\b",
        lambda r, m, p, n: r.returncode == 0 and f"NOT converged after {m.group(1)} epoch" in _training_line(r),
    ),
    (r"\bconverges\b", lambda r, m, p, n: _converged(r)),
    # "faster" than the line above; "slower" than the line below (the tutorial's maxabs vs standard)
    (r"\bfaster\b", lambda r, m, p, n: _converged(r) and p is not None and _epochs(r) < _epochs(p)),
    (r"\bslower\b", lambda r, m, p, n: n is not None and _converged(n) and _epochs(r) > _epochs(n)),
]


def tutorial_claims(comment: str) -> list[tuple[str, re.Match]]:
    """The claims a comment makes; what is left once they are taken out must be only separators."""
    found, rest = [], comment
    for pattern, _ in TUTORIAL_CLAIMS:
        match = re.search(pattern, rest)
        if match:
            found.append((pattern, match))
            rest = rest[: match.start()] + " " + rest[match.end() :]
    assert rest.strip(" ,;:") == "", (
        f"README tutorial comment {comment!r}: {rest.strip()!r} is not a claim this test knows"
    )
    return found


def test_tutorial_commands_do_what_their_comments_say(readme):
    runs = readme.section("tutorial")
    checks = dict(TUTORIAL_CLAIMS)
    failures, previous = [], None
    for index, (command, result) in enumerate(runs):
        following = runs[index + 1][1] if index + 1 < len(runs) else None
        assert command.comment, f"README line {command.line}: a tutorial command without its claim"
        assert result.stderr.startswith("normflow: error:") or result.stderr.strip() == "", str(result)
        for pattern, match in tutorial_claims(command.comment):
            if not checks[pattern](result, match, previous, following):
                failures.append(
                    f"README line {command.line}: `{command.text}`  # {command.comment}\n"
                    f"  claim {match.group(0)!r} contradicted: training: {_training_line(result)!r}, "
                    f"exit {result.returncode}, losses {_losses(result)[:3]}, last stderr "
                    f"{(result.lines('stderr') or [''])[-1][:200]!r}"
                )
        previous = result
    # "The first ends with one line:" and the README shows it
    assert "The first ends with one line:" in readme_text()
    shown = untyped_block_starting("normflow: error: training diverged").text.strip()
    first = runs[0][1]
    if first.lines("stderr") != [shown] or first.stdout.strip():
        failures.append(f"the first tutorial command should print only\n  {shown}\n{first}")
    assert failures == [], "\n".join(failures)


def _leftovers_by_command(record) -> list[str]:
    """'command: [paths]' for every command in a section's record that left something."""
    if isinstance(record, Result):
        return [f"{record.command}: {record.left}"] if record.left else []
    if isinstance(record, dict):
        own = (
            [f"{record['server']} (while serving): {record['left']}"]
            if record.get("server") and record.get("left")
            else []
        )
        return own + [line for value in record.values() for line in _leftovers_by_command(value)]
    if isinstance(record, (list, tuple)):
        return [line for value in record for line in _leftovers_by_command(value)]
    return []


def test_the_commands_leave_nothing_the_readme_does_not_name(readme):
    readme.run_all()
    stray = [p for p in readme.status() if not p.startswith(ALLOWED_LEFTOVERS) and "__pycache__" not in p.split("/")]
    blame = _leftovers_by_command(list(readme.records.values()))
    assert stray == [], f"left in the repository folder: {stray}\nby:\n  " + "\n  ".join(blame)


@pytest.mark.xdist_group("readme-bench")  # needs only the copy, not the sections: it may run beside them
def test_benchmarks_quick(readme):
    """``python bench/run.py --quick`` (README: 1M rows, about two minutes); run alone with
    ``-k benchmarks``: it takes longer than the rest of this file. It writes its data to
    bench/data/ (git-ignored)."""
    command = command_in(bash_block("python bench/run.py"), "python bench/run.py --quick")
    assert re.fullmatch(r"1M rows, about two minutes; data in bench/data/", command.comment), command.comment
    result = readme.shell(command.text)
    print(f"\n{command.text}: {result.seconds:.0f} s")
    assert result.returncode == 0, str(result)
    assert "1M rows" in result.stdout, str(result)
    # the command rows: the flow and the console command beside the bare script (tests/integration/test_bench.py
    # runs every other entry point)
    for row in ("| train flow end to end, seed data |", "| normflow train end to end, seed data |", "| train --help |"):
        assert row in result.stdout, str(result)
    stray = [
        p
        for p in result.left
        if not p.startswith(ALLOWED_LEFTOVERS + BENCH_LEFTOVERS) and "__pycache__" not in p.split("/")
    ]
    assert stray == [], f"left in the repository folder: {stray}"
