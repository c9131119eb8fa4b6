"""Collecting an experiment's run summaries into the paper's tables: mean ± std over seeds, the paper's numbers
beside ours, incomplete runs marked, paired differences to a baseline with a confidence interval.

Per run, a column's value is its metric on its split at the epoch selected on the validation split
(``summary.json``'s ``best``), times the table's ``scale``. A method's cell is the mean and the sample
standard deviation (``ddof = 1``) over its complete runs. A paired difference is taken over the seeds both
methods completed: the mean of the per-seed differences ``d_i = x_i − b_i`` and the two-sided ``t`` interval
``mean ± t_{(1+c)/2, n−1} · sd(d) / √n`` (no interval with one pair). WiSE-FT adds a row per method that ran
it: the metrics at the α chosen on the validation split.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from discl.experiments.runner import COMPLETE, TRAINED, json_object, progress, run_status
from discl.experiments.spec import Experiment, Method, Run

WISEFT_SUFFIX = "+wiseft"


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (None with one value) and count."""

    mean: float | None
    std: float | None
    n: int


@dataclass(frozen=True)
class Difference:
    """A paired difference over ``seeds``: mean and its confidence interval (None with fewer than two pairs)."""

    mean: float | None
    low: float | None
    high: float | None
    seeds: tuple[int, ...]


@dataclass
class RunValues:
    """One run's column values (None where the run has none) and its state."""

    run: Run
    status: str
    values: dict[str, float | None]
    used: bool  # counted in the means (complete, or incomplete with include_incomplete)
    alpha: float | None = None  # WiSE-FT: the chosen α


@dataclass
class Row:
    """A row of the table."""

    id: str
    name: str
    cells: dict[str, Stat]
    expected: int
    runs: list[RunValues]
    paper: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    compare: str | None = None
    differences: dict[str, Difference] = field(default_factory=dict)
    alpha: Stat | None = None

    @property
    def incomplete(self) -> list[RunValues]:
        """The runs not counted (missing, unfinished), and the unfinished ones that were."""
        return [r for r in self.runs if r.status != COMPLETE]


def mean_std(values: Sequence[float]) -> Stat:
    """Mean and sample standard deviation (``ddof = 1``) of ``values``."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Stat(None, None, 0)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n)


def t_quantile(probability: float, degrees: int) -> float:
    """The Student-t quantile (scipy's)."""
    from scipy.stats import t

    return float(t.ppf(probability, degrees))


def paired_difference(values: dict[int, float], baseline: dict[int, float], confidence: float = 0.95) -> Difference:
    """Mean of ``values[s] − baseline[s]`` over the seeds both have, with its two-sided ``t`` interval."""
    seeds = tuple(sorted(set(values) & set(baseline)))
    deltas = [values[s] - baseline[s] for s in seeds]
    stat = mean_std(deltas)
    if stat.n < 2:
        return Difference(stat.mean, None, None, seeds)
    half = t_quantile((1 + confidence) / 2, stat.n - 1) * stat.std / math.sqrt(stat.n)
    return Difference(stat.mean, stat.mean - half, stat.mean + half, seeds)


# ------------------------------------------------------------------------------------------------ collect ----
def run_values(experiment: Experiment, run: Run,
               include_incomplete: bool = False) -> tuple[RunValues, RunValues | None]:
    """The run's values at its selected epoch, and at its WiSE-FT α (None when the method has no WiSE-FT)."""
    status = run_status(run)
    summary = json_object(run.output_dir / "summary.json")
    finished = status in (COMPLETE, TRAINED)
    best = summary.get("best") or {}
    used = finished or (include_incomplete and bool(best))
    values = {c.title: _scaled(best.get(c.split, {}).get(c.metric), experiment.scale) for c in experiment.columns}
    train = RunValues(run, COMPLETE if finished else status, values if used else {c: None for c in values}, used)
    if not run.method.wiseft:
        return train, None
    wiseft = json_object(run.output_dir / "wiseft" / "wiseft.json")
    chosen = wiseft.get("chosen") or {}
    values = {c.title: _scaled(chosen.get(c.split, {}).get(c.metric), experiment.scale) for c in experiment.columns}
    return train, RunValues(run, COMPLETE if wiseft else status, values, bool(wiseft), wiseft.get("chosen_alpha"))


def _scaled(value, scale: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value) * scale


def build_rows(experiment: Experiment, include_incomplete: bool = False) -> list[Row]:
    """One row per method (and per method's WiSE-FT), with statistics and paired differences."""
    rows: list[Row] = []
    by_id: dict[str, Row] = {}
    for method in experiment.methods:
        runs = [r for r in experiment.runs() if r.method.id == method.id]
        pairs = [run_values(experiment, run, include_incomplete) for run in runs]
        row = _row(experiment, method.id, method.name, [p[0] for p in pairs], method, method.paper, method.compare)
        rows.append(row)
        by_id[row.id] = row
        if method.wiseft:
            # against the compared method's WiSE-FT when it has one, else against the same method without it
            compare = f"{method.compare}{WISEFT_SUFFIX}" if method.compare else method.id
            wise = _row(experiment, method.id + WISEFT_SUFFIX, f"{method.name} + WiSE-FT", [p[1] for p in pairs],
                        method, {}, compare)
            alphas = [p[1].alpha for p in pairs if p[1].used and p[1].alpha is not None]
            wise.alpha = mean_std(alphas)
            rows.append(wise)
            by_id[wise.id] = wise
    for row in rows:
        if row.compare and row.compare not in by_id and row.compare.endswith(WISEFT_SUFFIX):
            row.compare = row.id.removesuffix(WISEFT_SUFFIX)  # the compared method has no WiSE-FT row
        if row.compare and row.compare in by_id:
            other = by_id[row.compare]
            for column in experiment.columns:
                mine = {r.run.seed: r.values[column.title] for r in row.runs
                        if r.used and r.values[column.title] is not None}
                theirs = {r.run.seed: r.values[column.title] for r in other.runs
                          if r.used and r.values[column.title] is not None}
                row.differences[column.title] = paired_difference(mine, theirs, experiment.confidence)
    return rows


def _row(experiment: Experiment, row_id: str, name: str, runs: list[RunValues], method: Method, paper: dict,
         compare: str | None) -> Row:
    cells = {c.title: mean_std([r.values[c.title] for r in runs if r.used and r.values[c.title] is not None])
             for c in experiment.columns}
    return Row(row_id, name, cells, len(method.seeds), runs, paper, compare)


# ------------------------------------------------------------------------------------------------ writers ----
def _number(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None:
        return "—"
    value = round(value, decimals) + 0.0  # no "-0.0"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def format_stat(stat: Stat, decimals: int, pm: str = " ± ") -> str:
    """``mean ± std`` (the mean alone with one run, ``—`` with none)."""
    if stat.mean is None:
        return "—"
    return _number(stat.mean, decimals) + ("" if stat.std is None else pm + _number(stat.std, decimals))


def format_paper(value: tuple[float, float | None] | None, decimals: int, pm: str = " ± ") -> str:
    """The paper's number as it reports it (``—`` where it reports none)."""
    if value is None:
        return "—"
    mean, std = value
    return _number(mean, decimals) + ("" if std is None else pm + _number(std, decimals))


def format_difference(difference: Difference | None, decimals: int) -> str:
    """``+1.2 [+0.4, +2.0]`` (no interval with one pair, ``—`` with none)."""
    if difference is None or difference.mean is None:
        return "—"
    text = _number(difference.mean, decimals, sign=True)
    if difference.low is not None:
        text += f" [{_number(difference.low, decimals, sign=True)}, {_number(difference.high, decimals, sign=True)}]"
    return text


def _seeds_cell(row: Row) -> str:
    used = sum(r.used for r in row.runs)
    return f"{used}/{row.expected}"


def _display_name(row: Row, decimals: int) -> str:
    name = row.name
    if row.alpha is not None and row.alpha.mean is not None:
        name += f" (α = {format_stat(row.alpha, 2)})"
    return name


def notes(rows: Sequence[Row]) -> list[str]:
    """A line per row with runs missing or unfinished (what the † marks)."""
    lines = []
    for row in rows:
        if not row.incomplete:
            continue
        parts = []
        for r in row.incomplete:
            what = r.status if r.status != "incomplete" else f"incomplete ({progress(r.run) or 'no epoch yet'})"
            parts.append(f"seed {r.run.seed} {what}" + (", counted" if r.used else ""))
        lines.append(f"† {row.name}: " + "; ".join(parts))
    return lines


def to_markdown(experiment: Experiment, rows: Sequence[Row]) -> str:
    """The table, the paired differences and the notes, as Markdown."""
    d = experiment.decimals
    titles = [c.title for c in experiment.columns]
    with_paper = any(row.paper for row in rows)
    header = ["method", *titles, "seeds"] + ([f"paper {t}" for t in titles] if with_paper else [])
    lines = []
    if experiment.title:
        lines += [f"### {experiment.title}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = _display_name(row, d) + (" †" if row.incomplete else "")
        cells = [name, *(format_stat(row.cells[t], d) for t in titles), _seeds_cell(row)]
        if with_paper:
            cells += [format_paper(row.paper.get(t), d) for t in titles]
        lines.append("| " + " | ".join(cells) + " |")
    compared = [row for row in rows if row.differences]
    if compared:
        names = {row.id: row.name for row in rows}
        level = f"{100 * experiment.confidence:g}%"
        lines += ["", f"Paired differences (same seeds; {level} CI, t distribution):", "",
                  "| method | vs | " + " | ".join(f"Δ {t} [{level} CI]" for t in titles) + " | paired seeds |",
                  "|---|---|" + "---|" * len(titles) + "---|"]
        for row in compared:
            seeds = max((len(row.differences[t].seeds) for t in titles), default=0)
            lines.append(f"| {row.name} | {names.get(row.compare, row.compare)} | "
                         + " | ".join(format_difference(row.differences.get(t), d) for t in titles) + f" | {seeds} |")
    extra = notes(rows)
    if extra:
        lines += [""] + extra
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ["method_id", "method", "column", "split", "metric", "mean", "std", "n", "expected", "paper_mean",
               "paper_std", "compare", "diff_mean", "ci_low", "ci_high", "paired_seeds", "alpha", "not_counted"]


def to_csv(experiment: Experiment, rows: Sequence[Row]) -> str:
    """One line per (method, column): the statistics, the paper's number, the paired difference."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        for column in experiment.columns:
            stat, paper = row.cells[column.title], row.paper.get(column.title, (None, None))
            diff = row.differences.get(column.title)
            writer.writerow({
                "method_id": row.id, "method": row.name, "column": column.title, "split": column.split,
                "metric": column.metric, "mean": _csv(stat.mean), "std": _csv(stat.std), "n": stat.n,
                "expected": row.expected, "paper_mean": _csv(paper[0]), "paper_std": _csv(paper[1]),
                "compare": row.compare or "", "diff_mean": _csv(diff and diff.mean), "ci_low": _csv(diff and diff.low),
                "ci_high": _csv(diff and diff.high),
                "paired_seeds": " ".join(map(str, diff.seeds)) if diff else "",
                "alpha": _csv(row.alpha.mean if row.alpha else None),
                "not_counted": " ".join(f"seed{r.run.seed}:{r.status}" for r in row.runs if not r.used)})
    return buffer.getvalue()


def runs_csv(experiment: Experiment, rows: Sequence[Row]) -> str:
    """One line per run: its state, whether it is counted, and its column values."""
    buffer = io.StringIO()
    titles = [c.title for c in experiment.columns]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method_id", "seed", "status", "counted", "alpha", *titles])
    for row in rows:
        for r in row.runs:
            writer.writerow([row.id, r.run.seed, r.status, int(r.used), _csv(r.alpha),
                             *(_csv(r.values[t]) for t in titles)])
    return buffer.getvalue()


def _csv(value) -> str:
    return "" if value is None else repr(float(value))


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
                  "α": r"$\alpha$", "±": r"$\pm$", "†": r"$^\dagger$", "Δ": r"$\Delta$", "—": "--"}


def latex_escape(text: str) -> str:
    """Plain text as LaTeX (special characters escaped, ± α † Δ as math)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(experiment: Experiment, rows: Sequence[Row]) -> str:
    """A booktabs table: ours as ``mean ± std`` per column, then the paper's; † marks incomplete methods."""
    d = experiment.decimals
    titles = [c.title for c in experiment.columns]
    with_paper = any(row.paper for row in rows)
    spec = "l" + "c" * len(titles) + ("c" * len(titles) if with_paper else "")
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    if with_paper:
        lines.append(" & " + rf"\multicolumn{{{len(titles)}}}{{c}}{{Ours}} & "
                     + rf"\multicolumn{{{len(titles)}}}{{c}}{{Paper}} \\")
        lines.append(rf"\cmidrule(lr){{2-{1 + len(titles)}}}\cmidrule(lr){{{2 + len(titles)}-{1 + 2 * len(titles)}}}")
    lines.append("Method & " + " & ".join(latex_escape(t) for t in (titles * (2 if with_paper else 1))) + r" \\")
    lines.append(r"\midrule")
    for row in rows:
        name = latex_escape(_display_name(row, d)) + (r"$^\dagger$" if row.incomplete else "")
        cells = [_latex_stat(row.cells[t], d) for t in titles]
        if with_paper:
            cells += [_latex_paper(row.paper.get(t), d) for t in titles]
        lines.append(" & ".join([name, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_stat(stat: Stat, decimals: int) -> str:
    if stat.mean is None:
        return "--"
    spread = "" if stat.std is None else r" \pm " + _number(stat.std, decimals)
    return "$" + _number(stat.mean, decimals) + spread + "$"


def _latex_paper(value, decimals: int) -> str:
    if value is None:
        return "--"
    return "$" + format_paper(value, decimals, pm=r" \pm ") + "$"


TABLE_FILES = {"markdown": "table.md", "csv": "table.csv", "latex": "table.tex", "runs": "runs.csv"}


def write_tables(experiment: Experiment, rows: Sequence[Row], folder: Path) -> dict[str, Path]:
    """``table.md``, ``table.csv``, ``table.tex`` and ``runs.csv`` in ``folder``."""
    from discl.fileio import atomic_write_text

    texts = {"markdown": to_markdown(experiment, rows), "csv": to_csv(experiment, rows),
             "latex": to_latex(experiment, rows), "runs": runs_csv(experiment, rows)}
    paths = {}
    for kind, text in texts.items():
        paths[kind] = folder / TABLE_FILES[kind]
        atomic_write_text(paths[kind], text)
    return paths
