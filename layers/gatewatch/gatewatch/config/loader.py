"""Load a targets YAML file into a validated ``Config``, or raise ``ConfigError`` listing every problem."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gatewatch.config import envrefs
from gatewatch.config.errors import ConfigError, Problem
from gatewatch.config.models import ENV_REF_RE, SECRET_HEADERS, Config, Target, _check_url
from gatewatch.config.yaml12 import Positions, YAMLProblem, parse

MAX_CONFIG_BYTES = 1024 * 1024


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a file. ``environ`` resolves ``${VAR}`` references (None: check the names only).

    Relative local paths in the file (``tls_ca_file``, ``settings.db_path``) are resolved against the file's folder.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [Problem("(file)", f"cannot read: {exc.strerror or exc}")]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), [Problem("(file)", f"larger than {MAX_CONFIG_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [Problem("(file)", f"is not UTF-8 text (byte {exc.start})")]) from None
    return load_config_text(text, source=str(path), environ=environ, base_dir=p.resolve().parent)


def load_config_text(
    text: str,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Validate a YAML text (YAML 1.2 semantics, duplicate keys rejected); every problem carries its line."""
    try:
        raw, pos = parse(text)
    except YAMLProblem as exc:
        raise ConfigError(source, [Problem(_path(exc.path), exc.message, exc.line, exc.column)]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("(file)", "must be a mapping with a 'targets:' list, e.g. "
                                                     "'targets: [{name: api, url: https://api.example.com/}]'")])

    problems: list[Problem] = []
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(err, raw, pos) for err in exc.errors()]
        problems += [_locate(p, pos) for p in _duplicate_names(raw)]
        raise ConfigError(source, _unique(problems)) from None

    problems += _duplicate_names(raw)
    problems += _inline_secrets(config)
    config, env_problems = _resolve_env(config, environ)
    problems += env_problems
    if problems:
        raise ConfigError(source, [_locate(p, pos) for p in problems])
    if base_dir is not None:
        config = _resolve_paths(config, Path(base_dir))
    return config


def _at(pos: Positions, loc: tuple[Any, ...], message: str, key: bool = False) -> Problem:
    where = pos.at(tuple(loc), key=key)
    line, column = where if where else (None, None)
    return Problem(_path(loc), message, line, column)


_PART_RE = re.compile(r"\[(\d+)\]|([^.\[]+)")


def _locate(problem: Problem, pos: Positions) -> Problem:
    """A problem made with a path string only (``targets[1].headers.X``) gets the line and column of that field."""
    if problem.line is not None or problem.path == "(file)":
        return problem
    loc = tuple(int(m.group(1)) if m.group(1) else m.group(2) for m in _PART_RE.finditer(problem.path))
    where = pos.at(loc)
    return replace(problem, line=where[0], column=where[1]) if where else problem


def _resolve_paths(config: Config, base: Path) -> Config:
    """Local files named relative to the config file are found next to it, wherever gatewatch is started from."""

    def local(value: str | None) -> str | None:
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return str(p if p.is_absolute() else base / p)

    targets = [t.model_copy(update={"tls_ca_file": local(t.tls_ca_file)}) if t.tls_ca_file else t
               for t in config.targets]
    settings = config.settings.model_copy(update={"db_path": local(config.settings.db_path)})
    return config.model_copy(update={"targets": targets, "settings": settings})


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: dict[tuple[str, str], Problem] = {}
    for p in problems:
        seen.setdefault((p.path, p.message), p)
    return list(seen.values())


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(file)"


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    cur = raw
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _allowed_keys(raw: Any, loc: tuple[Any, ...]) -> list[str]:
    """Names the keys a model accepts, for the 'unknown key' message."""
    from gatewatch.config import models

    model: Any = models.Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return sorted((f.alias or n) for n, f in model.model_fields.items())


def _model_of(annotation: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _problem(err: Mapping[str, Any], raw: Any, pos: Positions) -> Problem:
    loc = tuple(err["loc"])
    # Pydantic appends the validator kind (e.g. "function-after[...]") for model validators; drop it.
    loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(raw, loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        hint += f"{';' if not close else ''} allowed here: {', '.join(allowed)}" if allowed else ""
        return _at(pos, loc, f"unknown key{hint}", key=True)
    if kind == "missing":
        return _at(pos, loc, "is required")
    if kind == "value_error":
        msg = str(ctx.get("error") or err["msg"])
        return _at(pos, loc, msg)
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return _at(pos, loc, f"must be a whole number (got {got!r})")
    if kind in ("float_parsing", "float_type"):
        return _at(pos, loc, f"must be a number (got {got!r})")
    if kind in ("bool_parsing", "bool_type"):
        return _at(pos, loc, f"must be true or false (got {got!r})")
    if kind in ("string_type",):
        return _at(pos, loc, f"must be a string (got {got!r})")
    if kind in ("list_type",):
        return _at(pos, loc, f"must be a list (got {got!r})")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return _at(pos, loc, f"must be a mapping (got {got!r})")
    if kind == "literal_error":
        return _at(pos, loc, f"must be one of {ctx.get('expected')} (got {got!r})")
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        field = loc[-1] if loc else ""
        allowed = _range_text(raw, loc) or bounds[kind].format(**ctx)
        return _at(pos, loc, f"must be {allowed} (got {got!r})" if field else err["msg"])
    return _at(pos, loc, f"{err['msg']} (got {got!r})")


def _range_text(raw: Any, loc: tuple[Any, ...]) -> str | None:
    """'from 1 to 65535' when the field has both bounds, so the user sees the whole allowed range."""
    from annotated_types import Ge, Gt, Le, Lt

    from gatewatch.config import models

    model: Any = models.Config
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return None
        model = _model_of(field.annotation)
    if field is None:
        return None
    lo = hi = None
    lo_text = ""
    for m in field.metadata:
        if isinstance(m, Ge):
            lo, lo_text = m.ge, "from"
        elif isinstance(m, Gt):
            lo, lo_text = m.gt, "greater than"
        elif isinstance(m, Le):
            hi = m.le
        elif isinstance(m, Lt):
            hi = m.lt
    if lo is not None and hi is not None:
        if lo_text == "from":
            return f"from {lo} to {hi}"
        return f"greater than {lo} and at most {hi}"
    return None


def _duplicate_names(raw: Any) -> list[Problem]:
    targets = raw.get("targets") if isinstance(raw, dict) else None
    if not isinstance(targets, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for i, t in enumerate(targets):
        name = t.get("name") if isinstance(t, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                Problem(f"targets[{i}].name", f"duplicate name {name!r} (first used by targets[{first[name]}])")
            )
        else:
            first[name] = i
    return problems


def _inline_secrets(config: Config) -> list[Problem]:
    problems = []
    for i, t in enumerate(config.targets):
        for name, value in t.headers.items():
            if name.lower() in SECRET_HEADERS and not ENV_REF_RE.fullmatch(value):
                var = config.settings.env_prefix + name.upper().replace("-", "_")
                problems.append(
                    Problem(
                        f"targets[{i}].headers.{name}",
                        f"carries a secret: write it as an environment reference like ${{{var}}} "
                        "and export that variable, never inline",
                    )
                )
    return problems


def _ref_fields(t: Target) -> list[tuple[str, str, str]]:
    """(path, text, kind) of every field that may hold ${VAR}: headers, URLs, the body, JSON assertions."""
    out = [("url", t.url, "url")]
    out += [(f"headers.{k}", v, "header") for k, v in t.headers.items()]
    if t.body is not None:
        out.append(("body", t.body, "text"))

    def strings(where: str, value: Any) -> None:
        envrefs.walk_strings(value, lambda w, text: out.append((w, text, "text")) or text, where)

    strings("expect.json", t.expect.json_ or {})
    if t.health is not None:
        out.append(("health.url", t.health.url, "url"))
        strings("health.expect_json", t.health.expect_json)
    return [f for f in out if ENV_REF_RE.search(f[1])]


def _resolve_env(config: Config, environ: Mapping[str, str] | None) -> tuple[Config, list[Problem]]:
    """Checks every ${VAR} name (always) and, given ``environ``, substitutes it and checks the result where it
    lands; every problem names the field and the variable (gatewatch.config.envrefs)."""
    prefix, allow = config.settings.env_prefix, frozenset(config.settings.env_allow)
    problems: list[Problem] = []
    targets = []
    for i, t in enumerate(config.targets):
        values: dict[str, str] = {}
        for path, text, kind in _ref_fields(t):
            try:
                value = envrefs.expand(text, environ, prefix, allow, header=kind == "header")
                if kind == "url" and environ is not None:
                    _check_url(value)
            except ValueError as exc:
                problems.append(Problem(f"targets[{i}].{path}", str(exc)))
                continue
            values[path] = value
        targets.append(_with_values(t, values) if environ is not None and values else t)
    if environ is None or problems:
        return config, problems
    return config.model_copy(update={"targets": targets}), problems


def _with_values(t: Target, values: dict[str, str]) -> Target:
    def pick(where: str, text: str) -> str:
        return values.get(where, text)

    update: dict[str, Any] = {"url": values.get("url", t.url)}
    update["headers"] = {k: values.get(f"headers.{k}", v) for k, v in t.headers.items()}
    if t.body is not None:
        update["body"] = values.get("body", t.body)
    if t.expect.json_:
        json_ = envrefs.walk_strings(t.expect.json_, pick, "expect.json")
        update["expect"] = t.expect.model_copy(update={"json_": json_})
    if t.health is not None:
        update["health"] = t.health.model_copy(update={
            "url": values.get("health.url", t.health.url),
            "expect_json": envrefs.walk_strings(t.health.expect_json, pick, "health.expect_json"),
        })  # fmt: skip
    return t.model_copy(update=update)
