"""How ``--model`` and the architecture options resolve to a :class:`~flopcast.models.ModelSpec`: a preset id,
a size (``7B``, the size rule), a Hugging Face ``config.json`` path, or an explicit architecture (DESIGN §3)."""

from __future__ import annotations

import re

from pydantic import ValidationError

from flopcast.errors import ConflictingOptions, InvalidValue, opt
from flopcast.models import MAX_MODEL_PARAMS, ModelSpec
from flopcast.units import parse_count, parse_int

# The architecture options, each as messages name it (:func:`~flopcast.errors.opt`: a keyword here, a flag in the CLI).
FLAG_NAMES = {
    name: opt(name)
    for name in (
        "layers", "d_model", "heads", "kv_heads", "head_dim", "ffn", "gated_ffn", "vocab", "seq_len",
        "tied_embeddings", "experts", "active_experts",
    )
}  # fmt: skip
_BOOL_FLAGS = ("gated_ffn", "tied_embeddings")
# What a preset or a size leaves to the user: the run's sequence length and the vocabulary rows.
OVERRIDABLE_WITH_MODEL = ("vocab", "seq_len")
_REQUIRED_ARCHITECTURE = ("layers", "d_model", "heads")
_TRUE_WORDS, _FALSE_WORDS = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_SIZE_SUFFIX = re.compile(r"(?P<body>.*?\d\.?)\s*(?P<suffix>[kKmMgGbBtTpP])")


def _parse_bool(value: object, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    raise InvalidValue(f"{flag}: cannot read {value!r} as yes/no", hint="give true or false")


def _preset(text: str, given: dict):
    """The transformer preset ``text`` names, else a measured one (whose module is imported only then, off the
    start-up path of every transformer estimate); an unknown id suggests the closest of both kinds."""
    from flopcast.errors import UnknownModel
    from flopcast.presets import get_preset

    try:
        return get_preset(text)
    except UnknownModel:
        from flopcast.measured_models import preset_or_measured

        return preset_or_measured(text, given)


def looks_like_size(text: str) -> bool:
    """True when ``--model`` text is a size (starts with a digit: ``7B``, ``1.3e9``) rather than a preset id."""
    return bool(text) and (text[0].isdigit() or (text[0] == "." and text[1:2].isdigit()))


def parse_model_size(text: str) -> float:
    """``7B``, ``7b``, ``350M``, ``1.3e9`` → parameters. The suffix is case-insensitive here (``m`` is million)."""
    match = _SIZE_SUFFIX.fullmatch(text.strip())
    normal = (
        text.strip() if match is None else match["body"] + ("k" if match["suffix"] in "kK" else match["suffix"].upper())
    )
    try:
        return parse_count(normal, what=opt("model"))
    except InvalidValue as exc:
        raise InvalidValue(
            exc.raw_message, hint="give a preset id (`flopcast models list`) or a size such as 7B, 350M or 1.3e9"
        ) from None


def _spec(**fields) -> ModelSpec:
    """Build a ModelSpec; a validation failure becomes one :class:`InvalidValue` line naming the flag."""
    try:
        spec = ModelSpec(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        loc = err.get("loc") or ()
        where = FLAG_NAMES.get(str(loc[0]), str(loc[0])) + ": " if loc else ""
        raise InvalidValue(
            f"invalid model architecture: {where}{msg}",
            hint="`flopcast models show llama-2-7b` shows a valid architecture",
        ) from None
    if spec.params > MAX_MODEL_PARAMS:  # the same sanity bound as a size: keeps every estimate finite and fast
        raise InvalidValue(
            f"invalid model architecture: {spec.params:.3g} parameters, more than {MAX_MODEL_PARAMS:.0e}",
            hint=f"check {opt('layers')}, {opt('d_model')}, {opt('ffn')}, {opt('vocab')} and {opt('experts')}",
        )
    return spec


def _flags(names: list[str]) -> str:
    return ", ".join(FLAG_NAMES[n] for n in names)


def resolve_model(
    model: str | None = None,
    *,
    layers=None,
    d_model=None,
    heads=None,
    kv_heads=None,
    head_dim=None,
    ffn=None,
    gated_ffn=None,
    vocab=None,
    seq_len=None,
    tied_embeddings=None,
    experts=None,
    active_experts=None,
) -> ModelSpec:
    """The :class:`ModelSpec` that ``--model`` and the architecture flags describe. ``None`` = flag not given.

    Numeric flags may be ints or strings (``4k``, ``32000``: parsed with :func:`~flopcast.units.parse_int`);
    ``gated_ffn`` / ``tied_embeddings`` are booleans. The rules:

    * a Hugging Face config.json, or a directory holding one (:mod:`flopcast.hf_config`: a string ending in
      ``.json``, a directory with a config.json, or an existing path) → the model it describes, under the
      preset rules below.
    * a preset id or alias (any case) → that preset; only ``seq_len`` and ``vocab`` may change it, any other
      architecture flag is :class:`ConflictingOptions`. An override that changes the parameter count drops
      the published counts (they no longer describe the model).
    * a size (``7B``, ``350M``, ``1.3e9``) → :func:`shape_for_size`; ``seq_len``/``vocab`` feed the rule,
      any other architecture flag is :class:`ConflictingOptions`.
    * no model → an explicit architecture: ``layers``, ``d_model`` and ``heads`` are required
      (:class:`InvalidValue` naming the missing ones); the rest default as in :class:`ModelSpec`.
      ``experts`` > 1 needs ``active_experts``.

    Whether tensor parallelism divides the heads is the layout's business, not checked here.
    """
    from flopcast.model_sizes import SIZE_RULE_VOCAB, shape_for_size

    raw = {
        "layers": layers,
        "d_model": d_model,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "ffn": ffn,
        "gated_ffn": gated_ffn,
        "vocab": vocab,
        "seq_len": seq_len,
        "tied_embeddings": tied_embeddings,
        "experts": experts,
        "active_experts": active_experts,
    }
    given: dict[str, int | bool] = {}
    for name, value in raw.items():
        if value is None:
            continue
        flag = FLAG_NAMES[name]
        given[name] = _parse_bool(value, flag) if name in _BOOL_FLAGS else parse_int(value, what=flag)
    architecture = [n for n in given if n not in OVERRIDABLE_WITH_MODEL]

    if model is not None:
        text = str(model).strip()
        if not text:
            raise InvalidValue(
                f"{opt('model')}: empty value", hint="give a preset id such as llama-2-7b or a size such as 7B"
            )
        from flopcast.config_path import looks_like_config_path

        if looks_like_config_path(text):
            from flopcast.hf_config import load_hf_config

            base, what = load_hf_config(text), "a config.json"
        elif looks_like_size(text):
            n_params = parse_model_size(text)
            if architecture:
                raise ConflictingOptions(
                    f"{opt('model')} {text} together with {_flags(architecture)}",
                    hint=f"a size lets flopcast pick the shape: drop {_flags(architecture)}, or drop {opt('model')} "
                    f"and give the architecture ({_flags(list(_REQUIRED_ARCHITECTURE))}, ...)",
                )
            return shape_for_size(
                n_params,
                vocab=given.get("vocab", SIZE_RULE_VOCAB),
                seq_len=given.get("seq_len", ModelSpec.model_fields["seq_len"].default),
            )
        else:  # a transformer preset, or a measured one (CNN, ViT, DLRM: flopcast.measured_models)
            base, what = _preset(text, given), "a preset"
            if getattr(base, "measured", False):
                return base
        if architecture:
            raise ConflictingOptions(
                f"{opt('model')} {base.name} together with {_flags(architecture)}",
                hint=f"{what} fixes the architecture and only {opt('seq_len')} and {opt('vocab')} may change it: "
                f"drop {_flags(architecture)}, or drop {opt('model')} and give the whole architecture",
            )
        overrides = {n: v for n, v in given.items() if getattr(base, n) != v}
        if not overrides:
            return base
        changed = _spec(**{**base.model_dump(), **overrides})
        if changed.params != base.params:
            changed = changed.model_copy(update={"published_params": None, "published_active_params": None})
        return changed

    missing = [n for n in _REQUIRED_ARCHITECTURE if n not in given]
    if missing:
        raise InvalidValue(
            f"incomplete architecture: {_flags(missing)} missing"
            if len(missing) < len(_REQUIRED_ARCHITECTURE)
            else "no model given",
            hint=f"give {opt('model')} (a preset such as llama-2-7b, or a size such as 7B) or the architecture "
            f"{opt('layers')}, {opt('d_model')} and {opt('heads')}",
        )
    n_experts = given.get("experts", 1)
    if n_experts > 1 and "active_experts" not in given:
        raise InvalidValue(
            f"{opt('experts')} {n_experts} needs {opt('active_experts')}",
            hint=f"say how many experts each token uses, e.g. {opt('active_experts')} 2 (Mixtral's top-2)",
        )
    if "active_experts" in given and n_experts == 1 and given["active_experts"] > 1:
        raise InvalidValue(
            f"{opt('active_experts')} {given['active_experts']} needs {opt('experts')}",
            hint=f"give the total number of experts, e.g. {opt('experts')} 8",
        )
    return _spec(name="custom", **given)
