"""Experiment files: a paper table (or an ablation) as a declarative matrix of training runs, methods × seeds.

An experiment file is TOML (``tomllib``, standard library). A run is one method at one seed: a dataset, a
trainer, a curriculum or baseline and the flags that differ from the trainer's (the paper's) defaults. The
file names its table (which split and metric each column reports) and, per method, the paper's numbers.
docs/experiments.md describes every key; ``experiments/*.toml`` are the paper's tables and ablations::

    name = "iwildcam"
    seeds = [0, 1, 2]
    [variables]                      # ${NAME} in any string; the environment and --set NAME=VALUE override
    WILDS = "data/wilds"
    [defaults]                       # every method's keys unless the method sets them (flags are merged)
    trainer = "flyp"
    dataset = "iwildcam"
    flags = { data-root = "${WILDS}" }
    [table]
    columns = [{ title = "OOD", split = "test", metric = "f1" }]
    scale = 100                      # fractions shown as %
    [[methods]]
    id = "flyp"
    name = "FLYP"
    flags = { curriculum = "none" }
    paper = { OOD = [35.5, 1.1] }    # mean, std (or a single number)

Strings may use the built-ins ``${seed}``, ``${runs}`` (the experiment's run folder) and ``${run}`` (this
run's folder), resolved per run.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from discl.errors import InputError, decoding

DEFAULT_SCRIPT = "curriculum/train.py"  # the generic trainer: the only one that takes --trainer
WISEFT_SCRIPT = "curriculum/wiseft.py"
BUILTINS = ("seed", "runs", "run")
# flags the runner sets itself
RESERVED_FLAGS = ("seed", "output-dir", "resume", "trainer", "dataset")

TOP_KEYS = {"name", "description", "runs_dir", "seeds", "variables", "defaults", "table", "launch", "figures",
            "methods"}
METHOD_KEYS = {"id", "name", "trainer", "dataset", "script", "flags", "seeds", "after", "wiseft", "wiseft_flags",
               "compare", "paper"}
DEFAULT_KEYS = METHOD_KEYS - {"id", "name", "paper"}
TABLE_KEYS = {"title", "columns", "scale", "decimals", "confidence", "baseline"}
COLUMN_KEYS = {"title", "split", "metric"}
LAUNCH_KEYS = {"command", "slurm"}
FIGURE_KEYS = {"generation", "threshold", "spectrum_rows"}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHOD_ID = re.compile(r"[A-Za-z0-9._-]+")  # an id names the runs' folder under runs_dir

FlagValue = str | int | float | bool | list


@dataclass(frozen=True)
class Column:
    """A column of the results table: ``metric`` of the selected epoch on ``split``."""

    title: str
    split: str
    metric: str


@dataclass(frozen=True)
class Method:
    """A row of the table: how each of its runs is trained (and whether WiSE-FT follows)."""

    id: str
    name: str
    trainer: str
    dataset: str
    script: str
    flags: dict[str, FlagValue]
    seeds: tuple[int, ...]
    after: tuple[str, ...] = ()
    wiseft: bool = False
    wiseft_flags: dict[str, FlagValue] = field(default_factory=dict)
    compare: str | None = None  # the method its paired differences are taken against
    paper: dict[str, tuple[float, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """One method at one seed; ``index`` is its place in the experiment's run list (SLURM array index)."""

    method: Method
    seed: int
    index: int
    output_dir: Path

    @property
    def id(self) -> str:
        """``<method id>/seed<seed>``: also the run's folder under the experiment's run folder."""
        return f"{self.method.id}/seed{self.seed}"


@dataclass
class Experiment:
    """A validated experiment file."""

    path: Path
    name: str
    description: str
    runs_dir: Path
    methods: list[Method]
    columns: list[Column]
    title: str = ""
    scale: float = 1.0
    decimals: int = 2
    confidence: float = 0.95
    launcher: list[str] = field(default_factory=list)  # replaces the python of training commands (torchrun ...)
    slurm: list[str] = field(default_factory=list)  # #SBATCH options
    generation: Path | None = None
    threshold: float | None = None
    spectrum_rows: int = 4

    def method(self, method_id: str) -> Method:
        """The method with this id."""
        for method in self.methods:
            if method.id == method_id:
                return method
        raise KeyError(method_id)

    def runs(self) -> list[Run]:
        """Every run, methods in file order, then seeds (a stable order: SLURM array indices refer to it)."""
        runs = []
        for method in self.methods:
            for seed in method.seeds:
                runs.append(Run(method, seed, len(runs), self.runs_dir / method.id / f"seed{seed}"))
        return runs

    def run(self, run_id: str) -> Run:
        """The run ``<method id>/seed<seed>``."""
        for run in self.runs():
            if run.id == run_id:
                return run
        raise InputError("--run", f"no run {run_id!r} in {self.path} (runs: "
                                  f"{', '.join(r.id for r in self.runs())})")

    def builtins(self, run: Run) -> dict[str, str]:
        """The per-run values of ``${seed}``, ``${runs}`` and ``${run}``."""
        return {"seed": str(run.seed), "runs": str(self.runs_dir), "run": str(run.output_dir)}


def slug(name: str) -> str:
    """A folder name from a method name: ``"FLYP + DisCL"`` → ``"flyp-discl"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "method"


def substitute(text: str, values: Mapping[str, str], where: str, path: Path, keep: Sequence[str] = ()) -> str:
    """``${NAME}`` replaced from ``values``; names in ``keep`` stay for later; any other name is an error."""
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        if name in keep:
            return match.group(0)
        raise InputError(path, f"{where}: unknown variable ${{{name}}}; set it in [variables], in the environment "
                               f"or with --set {name}=VALUE")

    return _VARIABLE.sub(replace, text)


def _substitute_value(value: Any, values: Mapping[str, str], where: str, path: Path, keep: Sequence[str]) -> Any:
    if isinstance(value, str):
        return substitute(value, values, where, path, keep)
    if isinstance(value, list):
        return [_substitute_value(v, values, where, path, keep) for v in value]
    return value


def _check_keys(table: Mapping, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(path, f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _table(value: Any, where: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(path, f"{where} must be a table")
    return value


def _seeds(value: Any, where: str, path: Path) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            for s in value):
        raise InputError(path, f"{where}: seeds must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise InputError(path, f"{where}: seeds repeat: {value}")
    return tuple(value)


def _flags(value: Any, where: str, path: Path, variables: Mapping[str, str]) -> dict[str, FlagValue]:
    flags = {}
    for key, item in _table(value, where, path).items():
        flag = str(key).replace("_", "-").lstrip("-")
        if flag in RESERVED_FLAGS:
            raise InputError(path, f"{where}: --{flag} is set by the runner (use the method's keys and seeds)")
        scalar = (str, int, float, bool)
        if isinstance(item, dict) or (isinstance(item, list) and not all(isinstance(v, scalar) for v in item)):
            raise InputError(path, f"{where}: flag {key!r} must be a string, number, boolean or list of them")
        flags[flag] = _substitute_value(item, variables, f"{where}.{key}", path, BUILTINS)
    return flags


def _paper(value: Any, columns: list[Column], where: str, path: Path) -> dict[str, tuple[float, float | None]]:
    titles = [c.title for c in columns]
    numbers = {}
    for title, item in _table(value, where, path).items():
        if title not in titles:
            raise InputError(path, f"{where}: {title!r} is not a column of [table] ({', '.join(titles)})")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            numbers[title] = (float(item), None)
        elif (isinstance(item, list) and len(item) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)):
            numbers[title] = (float(item[0]), float(item[1]))
        else:
            raise InputError(path, f"{where}.{title}: expected a number or [mean, std], got {item!r}")
    return numbers


def resolve_variables(declared: Mapping[str, Any], overrides: Mapping[str, str], path: Path) -> dict[str, str]:
    """``[variables]`` overridden by the environment, then by ``--set``; built-in names are refused."""
    values = {}
    for name, value in declared.items():
        if name in BUILTINS:
            raise InputError(path, f"[variables]: {name!r} is a built-in (${{{name}}} is set per run)")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InputError(path, f"[variables].{name}: expected a string or number, got {value!r}")
        values[name] = str(value)
    merged = {**values, **os.environ, **overrides}  # the environment overrides the file, --set overrides both
    # a variable's default may name another variable (DATA = "${RUN}/data"): resolve until nothing changes
    for _ in range(len(values) + 1):
        resolved = {name: substitute(merged[name], merged, f"variable {name}", path, BUILTINS)
                    for name in values if "${" in merged[name]}
        if all(merged[name] == value for name, value in resolved.items()):
            break
        merged.update(resolved)
    return merged


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` items as a dict."""
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError("--set", f"expected NAME=VALUE, got {item!r}")
        values[name.strip()] = value
    return values


def default_columns(dataset: str) -> list[Column]:
    """The dataset's selection metric on each of its evaluation splits (titles from its ``split_titles``)."""
    from discl.datasets import dataset_class

    cls = dataset_class(dataset)
    return [Column(cls.split_titles.get(s, s), s, cls.selection_metric) for s in cls.eval_splits
            if s != cls.selection_split]


def load_experiment(path: str | os.PathLike, runs_dir: str | os.PathLike | None = None,
                    overrides: Mapping[str, str] | None = None) -> Experiment:
    """Read and validate an experiment file (``InputError`` naming the file and key on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "experiment file not found")
    try:
        with decoding(path):
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise InputError(path, f"not valid TOML: {err}") from None
    _check_keys(data, TOP_KEYS, "top level", path)
    variables = resolve_variables(_table(data.get("variables"), "[variables]", path), overrides or {}, path)

    name = str(data.get("name") or path.stem)
    seeds = _seeds(data.get("seeds", [0]), "seeds", path)
    defaults = _table(data.get("defaults"), "[defaults]", path)
    _check_keys(defaults, DEFAULT_KEYS, "[defaults]", path)
    table = _table(data.get("table"), "[table]", path)
    _check_keys(table, TABLE_KEYS, "[table]", path)
    launch = _table(data.get("launch"), "[launch]", path)
    _check_keys(launch, LAUNCH_KEYS, "[launch]", path)
    figures = _table(data.get("figures"), "[figures]", path)
    _check_keys(figures, FIGURE_KEYS, "[figures]", path)

    raw_methods = data.get("methods")
    if not isinstance(raw_methods, list) or not raw_methods:
        raise InputError(path, "no [[methods]]: an experiment needs at least one method")
    first_dataset = next((m.get("dataset") for m in raw_methods if isinstance(m, dict) and m.get("dataset")),
                         defaults.get("dataset"))
    columns = _columns(table.get("columns"), first_dataset, path)

    methods, ids = [], set()
    for number, raw in enumerate(raw_methods, start=1):
        method = _method(raw, number, defaults, seeds, variables, columns, path)
        if method.id in ids:
            raise InputError(path, f"[[methods]] {number}: the id {method.id!r} is used twice (set id = ...)")
        ids.add(method.id)
        methods.append(method)
    _check_columns(columns, methods, path)
    baseline = table.get("baseline")
    for method in methods:
        for other in (*method.after, *([method.compare] if method.compare else [])):
            if other not in ids:
                raise InputError(path, f"method {method.id!r}: {other!r} is not a method id ({', '.join(sorted(ids))})")
    if baseline is not None and baseline not in ids:
        raise InputError(path, f"[table].baseline: {baseline!r} is not a method id")
    if baseline is not None:
        methods = [m if m.compare or m.id == baseline else _with_compare(m, baseline) for m in methods]
    _check_order(methods, path)

    runs = runs_dir if runs_dir is not None else data.get("runs_dir") or f"runs/experiments/{name}"
    runs = substitute(str(runs), variables, "runs_dir", path)
    generation = figures.get("generation")
    command = launch.get("command", [])
    slurm = launch.get("slurm", [])
    for key, value in (("command", command), ("slurm", slurm)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(path, f"[launch].{key}: expected a list of strings")
    return Experiment(
        path=path, name=name, description=str(data.get("description", "")), runs_dir=Path(runs),
        methods=methods, columns=columns, title=str(table.get("title", "")),
        scale=_number(table.get("scale", 1.0), "[table].scale", path),
        decimals=_integer(table.get("decimals", 2), "[table].decimals", 0, path),
        confidence=_confidence(table.get("confidence", 0.95), path),
        launcher=[substitute(v, variables, "[launch].command", path) for v in command],
        slurm=[substitute(v, variables, "[launch].slurm", path) for v in slurm],
        generation=None if not generation else Path(substitute(str(generation), variables, "[figures].generation",
                                                               path)),
        threshold=None if figures.get("threshold") is None else _number(figures["threshold"],
                                                                         "[figures].threshold", path),
        spectrum_rows=_integer(figures.get("spectrum_rows", 4), "[figures].spectrum_rows", 1, path))


def _with_compare(method: Method, baseline: str) -> Method:
    from dataclasses import replace

    return replace(method, compare=baseline)


def _number(value: Any, where: str, path: Path) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputError(path, f"{where}: expected a number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, minimum: int, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(path, f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _confidence(value: Any, path: Path) -> float:
    value = _number(value, "[table].confidence", path)
    if not 0 < value < 1:
        raise InputError(path, f"[table].confidence: expected a level in (0, 1), got {value}")
    return value


def _columns(raw: Any, dataset: str | None, path: Path) -> list[Column]:
    if raw is None:
        if not dataset:
            raise InputError(path, "[table].columns: needed when no method names its dataset")
        return default_columns(dataset)
    if not isinstance(raw, list) or not raw:
        raise InputError(path, "[table].columns: expected a non-empty list of {title, split, metric} tables")
    columns = []
    for number, item in enumerate(raw, start=1):
        where = f"[table].columns[{number}]"
        item = _table(item, where, path)
        _check_keys(item, COLUMN_KEYS, where, path)
        missing = [k for k in ("split", "metric") if not item.get(k)]
        if missing:
            raise InputError(path, f"{where}: missing {', '.join(missing)}")
        columns.append(Column(str(item.get("title") or f"{item['split']} {item['metric']}"), str(item["split"]),
                              str(item["metric"])))
    titles = [c.title for c in columns]
    if len(set(titles)) != len(titles):
        raise InputError(path, f"[table].columns: titles repeat: {titles}")
    return columns


def reported(dataset: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The splits and metrics a run on ``dataset`` reports in its summary (None for a user's dataset module)."""
    from discl.datasets import dataset_class

    if "." in dataset:
        return None
    cls = dataset_class(dataset)
    # a dataset whose splits depend on its data (folder) declares them as a property: its titled splits
    splits = cls.eval_splits if isinstance(cls.eval_splits, (tuple, list)) else tuple(cls.split_titles)
    return tuple(dict.fromkeys((cls.selection_split, *splits))), tuple(cls.metric_names)


def _check_columns(columns: list[Column], methods: list[Method], path: Path) -> None:
    """Every column's split and metric must be one that every method's runs report."""
    for dataset in dict.fromkeys(m.dataset for m in methods):
        known = reported(dataset)
        if known is None:
            continue
        for number, column in enumerate(columns, start=1):
            for key, value, allowed in (("split", column.split, known[0]), ("metric", column.metric, known[1])):
                if value not in allowed:
                    raise InputError(path, f"[table].columns[{number}] ({column.title}): {key} {value!r} is not "
                                           f"one the {dataset} runs report ({', '.join(allowed)})")


def _method(raw: Any, number: int, defaults: dict, seeds: tuple[int, ...], variables: Mapping[str, str],
            columns: list[Column], path: Path) -> Method:
    raw = _table(raw, f"[[methods]] {number}", path)
    if not raw.get("name"):
        raise InputError(path, f"[[methods]] {number}: every method needs a name")
    name = str(raw["name"])
    where = f"[[methods]] {number} ({name})"
    _check_keys(raw, METHOD_KEYS, where, path)
    merged = {**defaults, **raw}
    flags = {**_flags(defaults.get("flags"), "[defaults].flags", path, variables),
             **_flags(raw.get("flags"), f"{where}.flags", path, variables)}
    wiseft_flags = {**_flags(defaults.get("wiseft_flags"), "[defaults].wiseft_flags", path, variables),
                    **_flags(raw.get("wiseft_flags"), f"{where}.wiseft_flags", path, variables)}
    for key in ("trainer", "dataset"):
        if not merged.get(key):
            raise InputError(path, f"{where}: no {key} (set it in the method or in [defaults])")
    _check_trainer_and_dataset(str(merged["trainer"]), str(merged["dataset"]), where, path)
    after = merged.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise InputError(path, f"{where}: after must be a list of method ids")
    wiseft = merged.get("wiseft", False)
    if not isinstance(wiseft, bool):
        raise InputError(path, f"{where}: wiseft must be true or false")
    if wiseft and merged["trainer"] != "flyp":
        raise InputError(path, f"{where}: WiSE-FT interpolates CLIP's zero-shot and fine-tuned weights: trainer "
                               f"flyp only, not {merged['trainer']}")
    script = substitute(str(merged.get("script", DEFAULT_SCRIPT)), variables, f"{where}.script", path)
    method_id = str(raw.get("id") or slug(name))
    if not _METHOD_ID.fullmatch(method_id) or method_id in (".", ".."):
        raise InputError(path, f"{where}: id {method_id!r} must be letters, digits, '.', '_' or '-' (not '.' or "
                               "'..'): it names the method's folder under runs_dir")
    return Method(id=method_id, name=name, trainer=str(merged["trainer"]),
                  dataset=str(merged["dataset"]), script=script, flags=flags,
                  seeds=_seeds(merged["seeds"], f"{where}.seeds", path) if "seeds" in merged else seeds,
                  after=tuple(after), wiseft=wiseft, wiseft_flags=wiseft_flags,
                  compare=None if merged.get("compare") in (None, "", method_id)
                  else str(merged["compare"]), paper=_paper(raw.get("paper"), columns, f"{where}.paper",
                                                                        path))


def _check_trainer_and_dataset(trainer: str, dataset: str, where: str, path: Path) -> None:
    from discl.datasets import names
    from discl.training.cli import TRAINERS

    if trainer not in TRAINERS:
        raise InputError(path, f"{where}: unknown trainer {trainer!r} (one of {', '.join(TRAINERS)})")
    if "." not in dataset and dataset not in names():  # a dotted name is a user's dataset module
        raise InputError(path, f"{where}: unknown dataset {dataset!r} (registered: {', '.join(names())})")


def _check_order(methods: list[Method], path: Path) -> None:
    """``after`` must not form a cycle."""
    done: set[str] = set()
    pending = {m.id: set(m.after) for m in methods}
    while pending:
        ready = [m for m, needs in pending.items() if needs <= done]
        if not ready:
            raise InputError(path, f"the methods' after lists form a cycle among {', '.join(sorted(pending))}")
        for method in ready:
            done.add(method)
            del pending[method]


def waves(experiment: Experiment, runs: Sequence[Run]) -> list[list[Run]]:
    """``runs`` in waves: a run's ``after`` methods are in earlier waves (the order they can start in)."""
    depth: dict[str, int] = {}

    def level(method_id: str) -> int:
        if method_id not in depth:
            method = experiment.method(method_id)
            depth[method_id] = 1 + max((level(a) for a in method.after), default=-1)
        return depth[method_id]

    grouped: dict[int, list[Run]] = {}
    for run in runs:
        grouped.setdefault(level(run.method.id), []).append(run)
    return [grouped[k] for k in sorted(grouped)]


def python() -> str:
    """The interpreter that runs the entry scripts (this one)."""
    return sys.executable
