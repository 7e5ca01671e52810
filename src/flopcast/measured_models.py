"""Measured models: a model known by its counts rather than a transformer's shape (CNNs, ViT, DLRM, any nn.Module).

A :class:`MeasuredModel` is a :class:`~flopcast.models.ModelSpec` whose transformer fields are placeholders
(one layer, one head, width 1, ``seq_len`` 1: a sample is its token) and whose counts are the measured ones:
parameters (dense + embedding tables), forward FLOPs per sample, stored activation bytes per sample and
looked-up embedding bytes per sample. Where the counts come from:

* the shipped presets (``data/measured_presets.yaml``: ResNet-50, ViT-B/16, DLRM), counted once with
  ``flopcast.torch_model`` on hand-built modules (tests/torch_factories/models.py) and checked against the
  papers' figures in tests/test_torch_model.py; no torch is needed to use them;
* ``--torch-model package.module:factory`` (:mod:`flopcast.torch_model`, with torch installed).

The core's terms for them: :mod:`flopcast.estimator.measured`. Their layouts are data parallel only (a
placeholder of one head and one layer leaves tensor and pipeline parallelism nothing to split), with the
embedding tables sharded over the data-parallel devices.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pydantic import Field, NonNegativeInt, PositiveInt

from flopcast.errors import ConflictingOptions, RuntimeFailure, UnknownModel, opt
from flopcast.models import ModelSpec

MEASURED_PRESETS_FILE = Path(__file__).resolve().parent / "data" / "measured_presets.yaml"
# The batch a --torch-model gets when none is given: the ImageNet reference batch of Goyal et al. 2017
# ("Accurate, Large Minibatch SGD", Sec. 2.1: "a reference batch size of 256") and He et al. 2016 Sec. 3.4.
DEFAULT_SAMPLE_BATCH = 256


class MeasuredModel(ModelSpec):
    """A model given by its measured counts (module docstring). Parameters in parameters, FLOPs and bytes per
    sample (bytes at 2 per element, 16-bit)."""

    layers: PositiveInt = 1
    d_model: PositiveInt = 1
    heads: PositiveInt = 1
    vocab: PositiveInt = 1
    seq_len: PositiveInt = 1
    final_norm: bool = False
    norms_per_layer: NonNegativeInt = 0
    kind: str = "measured"  # cnn, vision-transformer, recommendation, measured
    sample: str = "sample"  # what one sample is (e.g. "224×224 image")
    total_params: PositiveInt
    embedding_table_params: NonNegativeInt = 0  # sharded over the data-parallel devices
    forward_flops_per_sample: float = Field(gt=0)
    activation_bytes_per_sample: float = Field(ge=0)
    lookup_bytes_per_sample: float = Field(default=0.0, ge=0)
    default_batch: PositiveInt = DEFAULT_SAMPLE_BATCH
    default_batch_source: str | None = None
    torch_model: str | None = None  # the module:factory it was measured from (--torch-model)

    @property
    def measured(self) -> bool:
        return True

    @property
    def dense_params(self) -> int:
        return self.total_params - self.embedding_table_params

    @property
    def params(self) -> int:
        return self.total_params

    @property
    def active_params(self) -> int:
        return self.total_params

    @property
    def embedding_params(self) -> int:
        return self.embedding_table_params

    @property
    def non_embedding_params(self) -> int:
        return self.dense_params

    @property
    def active_non_embedding_params(self) -> int:
        return self.dense_params

    @property
    def matmul_params(self) -> int:
        return self.dense_params

    def array_row(self) -> dict:
        """The core's ModelArrays row (estimator/measured.py): one placeholder layer with the dense params."""
        dense = float(self.dense_params)
        # the placeholder layer keeps its width-1 attention and FFN (finite ratios in the transformer terms,
        # which measured rows replace); no vocabulary, head, embedding or experts
        zero = (
            "vocab", "layer_expert_params", "input_embedding_params", "head_params", "tied", "final_params",
            "dropout",
        )  # fmt: skip
        return {
            **dict.fromkeys(zero, 0.0),
            "layers": 1.0,
            "seq_len": 1.0,
            "params": float(self.total_params),
            "layer_params": dense,
            "layer_matmul_params_active": dense,
            "matmul_params": dense,
            "measured": 1.0,
            "forward_flops_per_sample": float(self.forward_flops_per_sample),
            "activation_bytes_per_sample": float(self.activation_bytes_per_sample),
            "embedding_table_params": float(self.embedding_table_params),
            "lookup_bytes_per_sample": float(self.lookup_bytes_per_sample),
        }


def is_measured(spec) -> bool:
    return bool(getattr(spec, "measured", False))


def _compact(key: str) -> str:
    return re.sub(r"[\s_\-/]+", "", key.strip().lower())


@functools.lru_cache(maxsize=1)
def _presets() -> dict[str, dict]:
    import yaml

    try:
        doc = yaml.safe_load(MEASURED_PRESETS_FILE.read_text(encoding="utf-8"))
        return {str(e["id"]).lower(): dict(e) for e in doc["presets"]}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise RuntimeFailure(f"cannot read {MEASURED_PRESETS_FILE}: {exc}", hint="reinstall flopcast") from None


def measured_preset_ids() -> list[str]:
    return list(_presets())


def _names(pid: str, entry: dict) -> list[str]:
    return [pid, *(str(a).lower() for a in entry.get("aliases") or ())]


def measured_preset(name: str) -> MeasuredModel | None:
    """The measured preset ``name`` (id or alias; case, spaces, dashes and underscores ignored), or None."""
    key = _compact(str(name))
    for pid, entry in _presets().items():
        if any(_compact(n) == key for n in _names(pid, entry)):
            fields = {k: v for k, v in entry.items() if k not in ("id", "title", "aliases", "notes")}
            return MeasuredModel(name=pid, **fields)
    return None


def preset_or_measured(text: str, given: dict):
    """``--model`` text → a measured preset, or the transformer preset (presets.get_preset); an unknown id
    suggests the closest of both kinds. ``given``: architecture options, which a measured preset refuses."""
    from flopcast.presets import get_preset
    from flopcast.units import suggest

    measured = measured_preset(text)
    if measured is not None:
        if given:
            names = ", ".join(opt(n) for n in given)
            raise ConflictingOptions(
                f"{opt('model')} {measured.name} together with {names}",
                hint=f"a measured model ({measured.kind}) has no transformer shape to change: drop {names}",
            )
        return measured
    try:
        return get_preset(text)
    except UnknownModel as exc:
        every = [n for pid, e in _presets().items() for n in _names(pid, e)]
        close = suggest(str(text).strip().lower(), every)
        if not close:
            raise
        ids = [pid for pid, e in _presets().items() if set(_names(pid, e)) & set(close)]
        raise UnknownModel(exc.raw_message, hint=f"did you mean {', '.join(ids)}? (a measured model)") from None


def from_counts(counts: dict) -> MeasuredModel:
    """A MeasuredModel from :func:`flopcast.torch_model.measure`'s counts."""
    return MeasuredModel(
        name=counts["name"],
        kind="measured",
        total_params=counts["params"],
        embedding_table_params=counts["embedding_params"],
        forward_flops_per_sample=counts["forward_flops_per_sample"],
        activation_bytes_per_sample=counts["activation_bytes_per_sample"],
        lookup_bytes_per_sample=counts["lookup_bytes_per_sample"],
        source=counts["source"],
        torch_model=counts["name"],
    )


def check_measured_layout(model, q) -> None:
    """A measured model trains data parallel only (with its embedding tables sharded over dp), without
    recomputation (its stored activations are measured for a plain backward)."""
    from flopcast.errors import InvalidLayout

    split = [n for n in ("tp", "pp", "cp", "ep") if (getattr(q, n) or 1) > 1]
    if split:
        names = ", ".join(f"{opt(n)} {getattr(q, n)}" for n in split)
        raise InvalidLayout(
            f"{names}: a measured model ({model.name}) trains data parallel only",
            hint=f"drop {', '.join(opt(n) for n in split)}; its embedding tables are sharded over the "
            "data-parallel devices",
        )
    if q.recompute not in (None, "none"):
        raise InvalidLayout(
            f"{opt('recompute')} {q.recompute}: a measured model ({model.name}) has no layers to recompute",
            hint=f"drop {opt('recompute')}",
        )


def default_batch_query(spec, query):
    """The query with the model's default batch (samples) when none is given, and the note that says so."""
    if query.global_batch is not None:
        return query, None
    source = f" ({spec.default_batch_source})" if spec.default_batch_source else ""
    note = f"no batch given: {spec.default_batch} samples per step{source}"
    return query.replace(global_batch=spec.default_batch), note


def measured_inputs(spec, tokens: float) -> dict:
    """The report's inputs of a measured model: its samples (the core's tokens) and its factory."""
    if not is_measured(spec):
        return {}
    return {"samples": tokens, "torch_model": spec.torch_model}


def measured_info(spec, row: dict, layout):
    """The report's block of a measured model from the core's row of the chosen layout."""
    from flopcast.estimator.flops import TRAINING_PASSES
    from flopcast.estimator.measured import TABLE_BYTES_PER_PARAM
    from flopcast.reports.estimate import MeasuredModelInfo

    sharded = spec.embedding_table_params > 0 and layout.dp > 1
    return MeasuredModelInfo(
        kind=spec.kind,
        sample=spec.sample,
        dense_params=spec.dense_params,
        embedding_table_params=spec.embedding_table_params,
        forward_flops_per_sample=spec.forward_flops_per_sample,
        training_flops_per_sample=TRAINING_PASSES * spec.forward_flops_per_sample,
        activation_bytes_per_sample=spec.activation_bytes_per_sample,
        lookup_bytes_per_sample=spec.lookup_bytes_per_sample,
        embedding_tables_sharded=sharded,
        embedding_table_bytes_per_device=TABLE_BYTES_PER_PARAM * spec.embedding_table_params / layout.dp,
        embedding_all_to_all_seconds=row["ep_comm_seconds"],
        samples_per_second=row["tokens_per_second"],
        published_params=spec.published_params,
        source=spec.source,
    )


def measured_budget(model, tokens, torch_model, samples):
    """(model, budget) for a measured model: ``torch_model`` measured into a MeasuredModel, ``samples`` as the
    budget (the core's tokens; the global batch counts samples too). Conflicts are usage errors."""
    from flopcast.errors import InvalidValue
    from flopcast.units import parse_count

    if torch_model is not None and model is not None:
        raise ConflictingOptions(
            f"{opt('model')} together with {opt('torch_model')}", hint="give one of them: the model or its factory"
        )
    if samples is not None and tokens is not None:
        raise ConflictingOptions(
            f"{opt('samples')} together with {opt('tokens')}",
            hint=f"{opt('samples')} is the budget of a measured model, {opt('tokens')} that of a transformer",
        )
    if torch_model is not None:
        from flopcast.torch_model import measure

        model = from_counts(measure(str(torch_model)))
    spec = model if isinstance(model, MeasuredModel) else measured_preset(str(model)) if model is not None else None
    if spec is None and model is not None:
        preset_or_measured(str(model), {})  # an unknown id: one line with the closest names of both kinds
    if spec is None:
        raise InvalidValue(
            f"{opt('samples')} is for a measured model (a CNN, ViT, DLRM or {opt('torch_model')})",
            hint=f"for a transformer give {opt('tokens')} and {opt('global_batch')} (sequences); measured presets: "
            f"{', '.join(measured_preset_ids())}",
        )
    if samples is None:
        raise InvalidValue(
            f"{opt('samples')}: no value given", hint=f"e.g. {opt('samples')} 1.28e8 (samples to train on)"
        )
    return spec, parse_count(samples, what=opt("samples"))
