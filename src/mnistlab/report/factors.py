"""What varied between runs, for mnistlab.report: read from each run's resolved config (what
actually ran), never from its override strings, so equal settings reached by different overrides
compare equal.

Keys that change no result (NON_RESULT_*) are never compared, ``trainer.seed`` is the replicate
axis, and a varying key whose value is a function of another varying key's value is folded into
it (``optimizer.rho`` exists only for ``rmsprop``, so it follows ``optimizer.name``); the
remaining keys are the *factors*, each run at one *level* of each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mnistlab.report.runs import Run, natural_key, to_float

# Keys that differ between jobs without changing any result: never factors, never split groups.
# Unlike mnistlab.run.rundir.NEUTRAL_KEYS (what may differ between the starts of one run) they also
# cover hydra.*, experiment and data.eval_batch_size, and dotted keys match whole, not as prefixes.
# optuna: a search's handle on each job's trial (storage, study, number), set by its sweeper
NON_RESULT_ROOTS = frozenset({"paths", "logger", "hydra", "sweeps", "experiment", "optuna"})
NON_RESULT_KEYS = frozenset(
    {"trainer.progress_bar", "data.dir", "data.mirrors", "data.download", "data.eval_batch_size"}
)
SEED_KEY = "trainer.seed"  # the replicate axis: a column, never a factor
NO_FACTOR = "(nothing varied)"
_MISSING = object()


def is_result_key(key: str) -> bool:
    """Whether a config key can change a run's result (see NON_RESULT_*)."""
    return key.split(".", 1)[0] not in NON_RESULT_ROOTS and key not in NON_RESULT_KEYS


def _canon(value: Any) -> str:
    return "\0missing" if value is _MISSING else json.dumps(value, sort_keys=True, default=str)


def _result_keys(known: Sequence[dict[str, Any]]) -> list[str]:
    """Every result key of the configs, grouped by root in config order."""
    keys = list(dict.fromkeys(k for c in known for k in c))
    roots = list(dict.fromkeys(k.split(".", 1)[0] for k in keys))
    keys.sort(key=lambda k: roots.index(k.split(".", 1)[0]))  # a late aug.p stays by aug.name
    return [k for k in keys if is_result_key(k)]


def _values(known: Sequence[dict[str, Any]], key: str) -> list[str]:
    return [_canon(c.get(key, _MISSING)) for c in known]


def comparable(config: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, ...]:
    """A config's values of ``keys`` as exactly comparable text: an absent key is not null."""
    return tuple(_canon(config.get(k, _MISSING)) for k in keys)


def all_varying(known: Sequence[dict[str, Any]]) -> list[str]:
    """Every result key whose value differs between the configs: what tells groups apart."""
    return [k for k in _result_keys(known) if len(set(_values(known, k))) > 1]


def varying_keys(configs: Sequence[dict[str, Any] | None]) -> list[str]:
    """Result keys whose value differs between runs, in config order: the runs table's columns.

    A key only some options of a group have (optimizer.rho) follows from the group's varying
    ``name`` and is left out: listing it too would only repeat the choice.
    """
    known = [c for c in configs if c is not None]
    if len(known) < 2:
        return []
    varying = all_varying(known)
    return [k for k in varying if _follower_of(k, varying, known) is None]


def factor_keys(configs: Sequence[dict[str, Any] | None]) -> dict[str, list[str]]:
    """The factors, in config order, each with the varying keys folded into it.

    A key only some options of a group have (optimizer.rho) is folded into the group's varying
    ``name``. Any other key is folded into a factor its value is a function of, provided that
    factor has fewer levels than there are distinct configs: where each config has a level of
    its own (Optuna's continuous values) every key is a function of every other, and folding
    would hide what was searched. Keys are taken finest first (most levels, then ``name`` keys,
    then config order), so of two keys that determine each other the ``name`` key is the factor.
    """
    known = [c for c in configs if c is not None]
    if len(known) < 2:
        return {}
    varying = [k for k in all_varying(known) if k != SEED_KEY]
    values = {k: _values(known, k) for k in varying}
    configs_seen = len(set(zip(*(values[k] for k in varying), strict=True)))
    owner: dict[str, str] = {}  # key -> the factor it is folded into (itself for a factor)
    for key in sorted(
        (k for k in varying if _follower_of(k, varying, known) is None),
        key=lambda k: (-len(set(values[k])), not k.endswith(".name"), varying.index(k)),
    ):
        owner[key] = next(
            (f for f in dict.fromkeys(owner.values())
             if len(set(values[f])) < configs_seen and _determines(values[f], values[key])),
            key,
        )  # fmt: skip
    for key in varying:
        name = _follower_of(key, varying, known)
        if name is not None:
            owner[key] = owner[name]
    return {f: [k for k in varying if k != f and owner[k] == f] for f in varying if owner[f] == f}


def _follower_of(key: str, varying: Sequence[str], known: Sequence[dict]) -> str | None:
    """The varying ``<group>.name`` that a key only some of its options have follows, if any
    (optimizer.rho: rmsprop's); a key with values of its own within one option is no follower."""
    name = f"{key.rsplit('.', 1)[0]}.name"
    if key == name or name not in varying or all(key in c for c in known):
        return None
    return name if _determines(_values(known, name), _values(known, key)) else None


def confounded_keys(
    folded: Mapping[str, Sequence[str]], configs: Sequence[dict[str, Any] | None]
) -> dict[str, list[str]]:
    """Per factor, the keys folded into it that every config has: they changed along with it
    (optimizer.lr set per optimizer), so its effect is theirs too. Followers (optimizer.rho) are
    part of the option and never count."""
    known = [c for c in configs if c is not None]
    return {f: [k for k in keys if all(k in c for c in known)] for f, keys in folded.items()}


def _determines(xs: Sequence[str], ys: Sequence[str]) -> bool:
    """Whether ys is a function of xs, pairwise over the runs."""
    seen: dict[str, str] = {}
    return all(seen.setdefault(x, y) == y for x, y in zip(xs, ys, strict=True))


def level_of(config: Mapping[str, Any], key: str) -> str:
    """A config's level of a factor as text: what the labels, tables and figures show."""
    value = config.get(key, _MISSING)
    if value is _MISSING:
        return "(unset)"
    return "null" if value is None else value_text(value)


def value_text(value: Any) -> str:
    """A config value as text; lists and dicts as JSON, as they were written."""
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def level_key(level: str) -> tuple[int, float, list[Any]]:
    """Numeric levels in numeric order (0.001 < 0.01), the rest naturally."""
    number = to_float(level)
    return (0, number, []) if math.isfinite(number) else (1, 0.0, natural_key(level))


def run_levels(runs: Sequence[Run], factors: Sequence[str]) -> list[dict[str, str] | None]:
    """Each run's level of each factor; None for a run whose config is unreadable."""
    return [
        None if run.config is None else {f: level_of(run.config, f) for f in factors}
        for run in runs
    ]
