"""Measure any PyTorch model (``--torch-model package.module:factory``): parameters, forward FLOPs, activations.

The factory is called with no arguments under ``torch.device("meta")``, so the model is built without memory or
weights, and returns either

* an ``nn.Module`` with a method ``example_inputs(batch)`` returning a tuple of input tensors for ``batch``
  samples, or
* a pair ``(module, make_inputs)``, ``make_inputs(batch)`` returning that tuple.

The forward pass runs twice on meta tensors, for 1 and for 2 samples, and each count per sample is the
difference of the two (what does not grow with the batch, such as the weights the backward keeps, drops out):

* forward FLOPs: PyTorch's own counter, ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
  multiply-add of every matmul, convolution and attention kernel; elementwise operations are not counted, as
  in the papers' "FLOPs" of a CNN);
* stored activation bytes: every tensor autograd saves for the backward
  (``torch.autograd.graph.saved_tensors_hooks``), each storage once, floating-point tensors at 2 bytes per
  element (16-bit mixed precision; the estimator scales them to the training precision), integer and boolean
  tensors (max-pool indices, dropout masks) at their own size;
* embedding tables (``nn.Embedding``, ``nn.EmbeddingBag``): their parameters and their looked-up output bytes
  per sample (16-bit), which a recommendation model exchanges by all-to-all when its tables are sharded.

torch is imported here only, and this module only when ``--torch-model`` is given.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from flopcast.errors import InvalidValue, RuntimeFailure, opt

INSTALL_HINT = "install PyTorch with: pip install 'flopcast[torch]'"
_SPEC = re.compile(r"^(?P<module>[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*):(?P<factory>[A-Za-z_]\w*)$")
MIXED_PRECISION_ELEMENT_BYTES = 2  # bf16/fp16 activations under mixed precision
# Embedding tables above this share of the parameters make a recommendation-shaped model: its tables are
# sharded over the devices (model parallel) rather than replicated (Naumov et al. 2019 Sec. 4: "model
# parallelism for the embeddings, data parallelism for the MLPs"). A language model's token embedding is a
# small share and stays data parallel.
EMBEDDING_SHARE_FOR_SHARDING = 0.5


def parse_spec(text: str) -> tuple[str, str]:
    """``package.module:factory`` → (module, factory); anything else is one clear line."""
    match = _SPEC.match(str(text).strip())
    if match is None:
        raise InvalidValue(
            f"{opt('torch_model')}: {text!r} is not module:factory",
            hint="give a Python module path and a function in it, e.g. mypkg.models:build_model",
        )
    return match["module"], match["factory"]


def _import_torch():
    try:
        import torch
    except ImportError:
        raise InvalidValue(f"{opt('torch_model')} needs PyTorch, which is not installed", hint=INSTALL_HINT) from None
    return torch


def load_factory(text: str):
    module_name, factory_name = parse_spec(text)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a module next to the user, as `python -m` would find it
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidValue(
            f"{opt('torch_model')}: cannot import module {module_name!r} ({exc})",
            hint="run from the directory that holds it or install its package",
        ) from None
    except Exception as exc:  # noqa: BLE001  (the user's module failed while importing)
        raise RuntimeFailure(
            f"{opt('torch_model')}: importing {module_name!r} raised {type(exc).__name__}: {exc}",
            hint="fix the module so that it imports",
        ) from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        from flopcast.units import suggest

        near = suggest(factory_name, names)
        raise InvalidValue(
            f"{opt('torch_model')}: module {module_name!r} has no function {factory_name!r}",
            hint=f"did you mean {near[0]}?" if near else "name a function that returns an nn.Module",
        )
    return factory


def build(text: str):
    """(module, make_inputs) from the factory, built on the meta device."""
    torch = _import_torch()
    factory = load_factory(text)
    try:
        with torch.device("meta"):
            made = factory()
    except Exception as exc:  # noqa: BLE001  (the user's factory failed)
        raise RuntimeFailure(
            f"{opt('torch_model')}: factory {text} raised {type(exc).__name__}: {exc}",
            hint="the factory is called with no arguments on the meta device; fix it or wrap it",
        ) from None
    module, make_inputs = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(module, torch.nn.Module):
        raise InvalidValue(
            f"{opt('torch_model')}: factory {text} returned {type(module).__name__}, not a torch.nn.Module",
            hint="return the model (an nn.Module with example_inputs(batch)) or a pair (model, make_inputs)",
        )
    make_inputs = make_inputs or getattr(module, "example_inputs", None)
    if not callable(make_inputs):
        raise InvalidValue(
            f"{opt('torch_model')}: {type(module).__name__} from {text} says nothing about its inputs",
            hint="give the module a method example_inputs(batch) returning a tuple of tensors, "
            "or return (model, make_inputs) from the factory",
        )
    return module, make_inputs


def _pass(torch, module, make_inputs, batch: int, text: str) -> tuple[float, float, float]:
    """(forward FLOPs, stored activation bytes, looked-up embedding bytes) of one forward on ``batch`` samples."""
    from torch.utils.flop_counter import FlopCounterMode

    seen: set[int] = set()
    stored = [0.0]

    def pack(t):
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in seen:
            seen.add(key)
            size = MIXED_PRECISION_ELEMENT_BYTES if t.is_floating_point() else t.element_size()
            stored[0] += storage.nbytes() / t.element_size() * size
        return t

    looked_up = [0.0]

    def on_lookup(_mod, _inputs, output):
        looked_up[0] += output.numel() * MIXED_PRECISION_ELEMENT_BYTES

    hooks = [
        m.register_forward_hook(on_lookup)
        for m in module.modules()
        if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag)
    ]
    try:
        counter = FlopCounterMode(display=False)
        # tensors the forward creates (masks, positions) go on the meta device too
        with torch.device("meta"):
            inputs = make_inputs(batch)
            inputs = inputs if isinstance(inputs, tuple | list) else (inputs,)
            with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                module(*inputs)
    except Exception as exc:  # noqa: BLE001  (the user's model failed on meta tensors)
        raise RuntimeFailure(
            f"{opt('torch_model')}: the forward pass of {text} on {batch} sample(s) raised {type(exc).__name__}: {exc}",
            hint="the model must run on meta tensors (no .item(), no data-dependent shapes)",
        ) from None
    finally:
        for h in hooks:
            h.remove()
    return float(counter.get_total_flops()), stored[0], looked_up[0]


def measure(text: str) -> dict:
    """Counts of the factory's model: the fields of a measured model (flopcast.measured_models.MeasuredModel)."""
    torch = _import_torch()
    module, make_inputs = build(text)
    module.train()
    one = _pass(torch, module, make_inputs, 1, text)
    two = _pass(torch, module, make_inputs, 2, text)
    flops, stored, lookup = (b - a for a, b in zip(one, two, strict=True))
    params = sum(p.numel() for p in module.parameters())
    tables = sum(
        p.numel()
        for m in module.modules()
        if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag)
        for p in m.parameters(recurse=False)
    )
    sharded = tables > EMBEDDING_SHARE_FOR_SHARDING * params
    if params <= 0 or flops <= 0:
        raise InvalidValue(
            f"{opt('torch_model')}: {text} has {params} parameters and {flops:g} forward FLOPs per sample",
            hint="a model to train needs parameters and matmuls or convolutions",
        )
    return {
        "name": text,
        "params": int(params),
        "embedding_params": int(tables) if sharded else 0,
        "forward_flops_per_sample": flops,
        "activation_bytes_per_sample": max(stored, 0.0),
        "lookup_bytes_per_sample": max(lookup, 0.0) if sharded else 0.0,
        "source": f"measured by flopcast (torch {torch.__version__} FlopCounterMode on the meta device)",
    }
