"""Reading a pipeline YAML and reporting every problem at once, each with its YAML path.

>>> problems = validate_text("pipeline: {name: p}\\ntrigger: {id: DataAmountTrigger, num_sample: 10}\\n")
>>> for problem in problems:
...     if problem.startswith("trigger"):
...         print(problem)
trigger.num_samples: field required
trigger.num_sample: unknown field (did you mean 'num_samples'?)
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.pipeline import checks
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.trust import NOBODY, CodeTrust


class PipelineConfigError(ModynStreamError):
    """A pipeline file that cannot be used; `problems` lists every reason, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _models_at(loc: tuple, root: type[BaseModel]) -> list[type[BaseModel]]:
    """The models that can stand at `loc`, following fields, list indices, dict keys and union tags."""
    models: list[type[BaseModel]] = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        nested = []
        for model in models:
            if part in model.model_fields:
                nested += _models_in(model.model_fields[part].annotation)
        tagged = [m for m in models if part in (_tag_of(m), m.__name__)]  # a callable discriminator's tag: the name
        models = nested or tagged or models  # dict keys (e.g. subtrigger names) keep the value models
    return models


def _tag_of(model: type[BaseModel]) -> str | None:
    for name in ("id", "name", "type"):
        field = model.model_fields.get(name)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            args = typing.get_args(field.annotation)
            if len(args) == 1:
                return args[0]
    return None


def _path(loc: tuple, root: type[BaseModel]) -> str:
    """`('trigger', 'DataAmountTrigger', 'num_samples')` -> `trigger.num_samples`; indices as [i]."""
    out = ""
    tags = {t for m in _all_models(root) for t in (_tag_of(m), m.__name__) if t}
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _all_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    stack = [root]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            stack += _models_in(field.annotation)
    return seen


def _suggest(word: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return close[0]
    prefixed = [k for k in known if len(word) >= 4 and k.startswith(word[:4])]
    return prefixed[0] if len(prefixed) == 1 else None


def describe(error: dict, root: type[BaseModel] = PipelineConfig) -> str:
    """One pydantic error of validating `root` as 'yaml.path: plain reason'."""
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx", {})
    where = _path(loc, root) or "(top level)"
    if kind == "extra_forbidden":
        known = sorted({name for model in _models_at(loc[:-1], root) for name in model.model_fields})
        close = _suggest(str(loc[-1]), known)
        hint = f"did you mean {close!r}?" if close else f"known fields: {', '.join(known)}"
        return f"{where}: unknown field ({hint})"
    if kind == "missing":
        return f"{where}: field required"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "id")).strip("'")
        known = [tag for tag in (_tag_of(m) for m in _models_at(loc, root)) if tag]
        if kind == "union_tag_not_found":
            return f"{where}: needs '{field}', one of {', '.join(known)}"
        value = error["input"].get(field) if isinstance(error["input"], dict) else error["input"]
        close = _suggest(str(value), known)
        hint = f"did you mean {close!r}?" if close else f"known: {', '.join(known)}"
        return f"{where}.{field}: unknown {value!r} ({hint})"
    message = error["msg"].removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error") and not isinstance(error.get("input"), dict | list):
        message += f", got {error.get('input')!r}"
    return f"{where}: {message}"


def validate_data(
    data: Any, trust: CodeTrust = NOBODY, base: Path = Path(".")
) -> tuple[PipelineConfig | None, list[str]]:
    """The config and every problem of it; code it names must be trusted by this process's operator, and
    relative paths in it are taken from `base` (the file's directory)."""
    if not isinstance(data, dict):
        return None, [f"(top level): a pipeline must be a mapping of sections, got {type(data).__name__}"]
    problems = checks.too_large(data)
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        return None, problems + [describe(e) for e in exc.errors()] + _old_layout_hint(data)
    problems += model_problems(config.model.id, config.model.config)
    if not problems:
        problems += checks.optimizer_problems(config) + checks.param_group_problems(config)
        problems += checks.decoder_problems(config, base)
    references = [("model.id", config.model.id)] if ":" in config.model.id else []
    references += config.data.code_references("data")
    if (vote := getattr(config.trigger, "ensemble_strategy", None)) is not None and vote.id == "Custom":
        references.append(("trigger.ensemble_strategy.aggregation_function", vote.aggregation_function))
    for i, dataset in enumerate(config.evaluation.datasets if config.evaluation else []):
        references += dataset.code_references(f"evaluation.datasets[{i}]")
    for field, reference in references:
        if refusal := trust.refusal(reference, field):
            problems.append(f"{field}: {refusal.removeprefix(field + ' ')}")
    return (None if problems else config), problems


def _old_layout_hint(data: dict) -> list[str]:
    from modyn_stream.pipeline.modyn_import import ModynLayoutError, convert

    try:
        changed = bool(convert(data)[1])
    except ModynLayoutError:
        changed = True  # what conversion refuses is old layout too
    except (AttributeError, TypeError):  # sections of the wrong type: not a layout question
        changed = False
    return ["(top level): this is Modyn's pre-2024 layout: `modyn-stream import-modyn FILE -o NEW.yaml` converts it"
            ] if changed else []  # fmt: skip


def model_problems(model_id: str, config: dict) -> list[str]:
    """A built-in model's config checked against its constructor, so a wrong name fails here, not in the trainer."""
    if ":" in model_id:
        return []  # code, checked where it is imported (and only if the operator trusts it)
    from modyn_stream.training.models import MODELS  # torch: only once the rest of the file is valid

    if model_id not in MODELS:
        near = difflib.get_close_matches(model_id, MODELS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(MODELS)}"
        return [f"model.id: unknown model {model_id!r}{hint}"]
    parameters = inspect.signature(MODELS[model_id]).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())  # Modyn's Dummy: a note says so
    problems = []
    for name in [] if takes_any else config:
        if name not in parameters:
            near = difflib.get_close_matches(name, parameters, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"it takes {', '.join(parameters)}"
            problems.append(f"model.config.{name}: not a parameter of {model_id} ({hint})")
    for name, parameter in parameters.items():
        if (
            parameter.default is inspect.Parameter.empty
            and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
            and (name not in config)
        ):
            problems.append(f"model.config.{name}: required by {model_id}")
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """The YAML document of `text`; yaml.YAMLError names the line and column of a problem."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def validate_text(text: str, source: str = "<string>", trust: CodeTrust = NOBODY, base: Path = Path(".")) -> list[str]:
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        return [f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]
    return validate_data(data, trust, base)[1]


def load_pipeline(path: Path, trust: CodeTrust = NOBODY) -> PipelineConfig:
    """The validated pipeline of `path`, or PipelineConfigError listing every problem (code it names must be
    trusted by the operator: `trust`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise PipelineConfigError(str(path), [f"line {line}: not UTF-8 text (byte {exc.start})"]) from None
    problems = validate_text(text, str(path), trust, path.parent)
    if problems:
        raise PipelineConfigError(str(path), problems)
    return validate_data(parse_yaml(text), trust, path.parent)[0]


def pipeline_id(config: PipelineConfig) -> tuple[str, str, str]:
    """(pipeline id, canonical JSON, sha256): the same config always gets the same id."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{config.pipeline.name}-{digest[:12]}", canonical, digest
