"""Model architecture: the spec, its parameter counts, the shipped presets and how ``--model`` resolves (DESIGN §3).

Parameters (decoder-only transformer, as the GPT-3, Llama and PaLM papers count them):
  embeddings  V·d (input) + V·d (output head) unless tied
  per layer   2·d·(heads·head_dim)            Q and O projections
              2·d·(kv_heads·head_dim)         K and V projections (GQA/MQA when kv_heads < heads)
              3·d·ffn (gated, SwiGLU) or 2·d·ffn (plain) per expert
              + attention/FFN biases where ``biases`` (GPT-2/3, BERT, Pythia)
              + 2 norms of d (×2 for LayerNorm's bias)
  final norm  d (×2 with LayerNorm bias) unless ``final_norm`` is off (post-LN BERT)
  position    s·d when ``learned_positions`` (GPT-3, BERT)
MoE: every expert's FFN counts toward total parameters (memory); only ``active_experts`` of them
toward active parameters (FLOPs), plus the router d·experts per MoE layer. Experts are ``moe_ffn`` wide
(``ffn`` when unset); ``shared_experts`` more of that width run on every token (DeepSeek, Llama 4) and count
toward both totals. Not every layer need be MoE: the first ``first_dense_layers`` (DeepSeek's
first_k_dense_replace) are dense, and past them layer i (0-based) is MoE only when (i+1) is a multiple of
``moe_layer_interval`` (Llama 4 Maverick's interleave step 2); a dense layer has one FFN of ``ffn``.
Attention ``mla`` (DeepSeek-V2/V3 multi-head latent attention) replaces Q, K, V, O by low-rank projections:
  Q    d·q_lora_rank + q_lora_rank (norm) + q_lora_rank·heads·(nope+rope)   (d·heads·(nope+rope) without q_lora_rank)
  KV   d·(kv_lora_rank + rope) + kv_lora_rank (norm) + kv_lora_rank·heads·(nope + v_head_dim)
  O    heads·v_head_dim·d
Norm counts: ``norms_per_layer`` norms of d per layer (2; Gemma 2/3 have 4), plus q/k norms of head_dim each
with ``qk_norm`` (Qwen3, Gemma 3). ``qkv_bias`` adds Q, K and V biases only (Qwen2). ``sliding_window`` and
``local_layers_per_global`` record which layers attend locally (no parameters; for the KV cache).
Encoder extras, off by default: ``segment_embeddings`` (BERT's token types, n·d), ``embedding_norm`` (a norm
right after the embeddings: BERT, BLOOM) and ``pooler`` (BERT's d×d + d dense layer on the first token).

A model is given (:func:`flopcast.model_resolve.resolve_model`) as a preset id (:mod:`flopcast.presets`), as a
size (``7B``, ``350M``: :func:`flopcast.model_sizes.shape_for_size` picks the shape), as a Hugging Face
``config.json`` (:mod:`flopcast.hf_config`), or as an explicit architecture.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

MAX_MODEL_PARAMS = 1e15  # a sanity bound on any model (a quadrillion parameters): keeps every estimate finite


class ModelSpec(BaseModel):
    """A decoder-only (or encoder-only, for BERT) transformer. Widths in elements, not bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    layers: PositiveInt
    d_model: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt | None = None  # None = heads (multi-head attention)
    head_dim: PositiveInt | None = None  # None = d_model / heads
    ffn: PositiveInt | None = None  # None = 4·d_model
    gated_ffn: bool = False
    vocab: PositiveInt = 50257
    seq_len: PositiveInt = 2048
    tied_embeddings: bool = False
    learned_positions: bool = False
    biases: bool = False
    dropout: bool = False  # trained with dropout: its masks are stored for the backward (GPT-3, OPT, BERT)
    layernorm_bias: bool = False
    experts: PositiveInt = 1
    active_experts: PositiveInt = 1
    segment_embeddings: NonNegativeInt = 0  # BERT token-type (segment) embedding rows: 2
    embedding_norm: bool = False  # a norm after the embeddings (BERT, BLOOM)
    final_norm: bool = True  # a norm before the output head (pre-LN decoders); post-LN BERT has none
    pooler: bool = False  # BERT's pooler: a d×d dense layer with bias on the first token
    qkv_bias: bool = False  # biases on Q, K and V only (Qwen2); ``biases`` already implies them
    norms_per_layer: NonNegativeInt = 2  # norms of d per layer: 2 (pre-attention, pre-FFN); Gemma 2/3: 4
    qk_norm: bool = False  # a norm of head_dim on queries and one on keys per layer (Qwen3, Gemma 3)
    # MoE beyond a uniform stack of routed experts (DeepSeek, Llama 4)
    moe_ffn: PositiveInt | None = None  # width of each expert; None = ffn
    shared_experts: NonNegativeInt = 0  # experts of width moe_ffn every token uses, in every MoE layer
    first_dense_layers: NonNegativeInt = 0  # the first k layers are dense (FFN of ffn): DeepSeek
    moe_layer_interval: PositiveInt = 1  # past those, layer i is MoE when (i+1) % interval == 0: Llama 4
    # Multi-head latent attention (DeepSeek-V2/V3): attention "mla" and its ranks
    attention: Literal["mha", "mla"] = "mha"  # mha: multi-head, grouped-query or multi-query attention
    q_lora_rank: PositiveInt | None = None  # None: a full-rank Q projection (DeepSeek-V2-Lite)
    kv_lora_rank: PositiveInt | None = None
    qk_rope_head_dim: PositiveInt | None = None
    qk_nope_head_dim: PositiveInt | None = None
    v_head_dim: PositiveInt | None = None
    # Local attention (no parameters; the KV cache of a local layer holds at most sliding_window tokens)
    sliding_window: PositiveInt | None = None
    local_layers_per_global: NonNegativeInt | None = None  # k: k local layers then 1 global; None: all local
    published_params: float | None = Field(default=None, gt=0)
    published_active_params: float | None = Field(default=None, gt=0)  # MoE: published params used per token
    source: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.attention == "mla" and (self.head_dim is not None or self.kv_heads not in (None, self.heads)):
            raise ValueError(
                "attention mla sets its head widths from qk_nope_head_dim, qk_rope_head_dim and "
                "v_head_dim, with one K/V per head: leave head_dim and kv_heads out"
            )
        if self.attention != "mla" and self.head_dim is None and self.d_model % self.heads:
            raise ValueError(
                f"d_model {self.d_model} is not divisible by heads {self.heads}; "
                "make d_model a multiple of heads or give head_dim"
            )
        if self.n_kv_heads > self.heads or self.heads % self.n_kv_heads:
            raise ValueError(f"kv_heads {self.n_kv_heads} must divide heads {self.heads}")
        if self.active_experts > self.experts:
            raise ValueError(f"active_experts {self.active_experts} exceeds experts {self.experts}")
        moe_only = [
            n for n in ("moe_ffn", "shared_experts", "first_dense_layers")
            if getattr(self, n)
        ] + (["moe_layer_interval"] if self.moe_layer_interval > 1 else [])  # fmt: skip
        if moe_only and self.experts == 1:
            raise ValueError(f"{', '.join(moe_only)} needs experts > 1")
        if self.experts > 1 and self.moe_layers == 0:
            raise ValueError(
                f"no MoE layer: first_dense_layers {self.first_dense_layers} and moe_layer_interval "
                f"{self.moe_layer_interval} leave none of {self.layers} layers"
            )
        mla_fields = ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
        if self.attention == "mla":
            missing = [n for n in mla_fields if getattr(self, n) is None]
            if missing:
                raise ValueError(f"attention mla needs {', '.join(missing)}")
        else:
            given = [n for n in ("q_lora_rank", *mla_fields) if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} needs attention mla")
        if self.local_layers_per_global is not None and self.sliding_window is None:
            raise ValueError("local_layers_per_global needs sliding_window")
        return self

    # --- derived shape -------------------------------------------------------------------------
    @property
    def is_mla(self) -> bool:
        return self.attention == "mla"

    @property
    def n_kv_heads(self) -> int:
        """K/V heads (MLA: every head has its own K and V once decompressed, so ``heads``)."""
        if self.is_mla:
            return self.heads
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def dim_head(self) -> int:
        """Width of a query/key head (MLA: qk_nope_head_dim + qk_rope_head_dim)."""
        if self.is_mla:
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def attn_width(self) -> int:
        """heads·head_dim: the width of Q and of the attention output (= d_model unless head_dim is set).
        MLA: the width of Q and K, heads·(nope+rope); the values are :attr:`v_width` wide."""
        return self.heads * self.dim_head

    @property
    def kv_width(self) -> int:
        return self.n_kv_heads * self.dim_head

    @property
    def v_width(self) -> int:
        """Width of the attention output before O: heads·v_head_dim under MLA, else heads·head_dim."""
        return self.heads * self.v_head_dim if self.is_mla else self.attn_width

    @property
    def kv_cache_width(self) -> int:
        """Elements one token leaves in one layer's KV cache: K and V (2·kv_heads·head_dim), or under MLA the
        compressed latent and the shared rotary key (kv_lora_rank + qk_rope_head_dim)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_width

    @property
    def ffn_size(self) -> int:
        """Width of a dense layer's FFN (and of each expert unless ``moe_ffn`` is set)."""
        return self.ffn if self.ffn is not None else 4 * self.d_model

    @property
    def expert_ffn_size(self) -> int:
        """Width of one routed or shared expert."""
        return self.moe_ffn if self.moe_ffn is not None else self.ffn_size

    @property
    def moe_layers(self) -> int:
        """Layers with routed experts: past ``first_dense_layers``, those with (i+1) % moe_layer_interval == 0."""
        if self.experts == 1:
            return 0
        k, step = self.first_dense_layers, self.moe_layer_interval
        return max(0, self.layers // step - k // step)  # #{i in [k, layers): (i+1) % step == 0}

    @property
    def dense_layers(self) -> int:
        """Layers with one FFN of ``ffn`` (all of them for a dense model)."""
        return self.layers - self.moe_layers

    @property
    def global_attention_layers(self) -> int:
        """Layers attending to the whole context: all without ``sliding_window``; with it, every
        (local_layers_per_global+1)-th layer (Gemma: local first, then global), none when every layer is local."""
        if self.sliding_window is None:
            return self.layers
        if self.local_layers_per_global is None:
            return 0
        return self.layers // (self.local_layers_per_global + 1)

    @property
    def local_attention_layers(self) -> int:
        """Layers whose KV cache holds at most ``sliding_window`` tokens."""
        return self.layers - self.global_attention_layers

    def kv_cache_elements_per_sequence(self, context: int) -> int:
        """KV-cache elements one sequence of ``context`` tokens holds over all layers (local layers cap at the
        window). Serving may use it; ``kv_cache_width`` × layers × context is the no-window figure."""
        local = min(context, self.sliding_window) if self.sliding_window is not None else context
        per_token = self.kv_cache_width
        return per_token * (self.global_attention_layers * context + self.local_attention_layers * local)

    # --- parameter counts ----------------------------------------------------------------------
    @property
    def _norm_params_per_norm(self) -> int:
        return self.d_model * (2 if self.layernorm_bias else 1)

    @property
    def _attention_norm_params(self) -> int:
        """Norms inside MLA's attention (on the compressed Q and KV): parameters, but no matmul."""
        if not self.is_mla:
            return 0
        return (self.q_lora_rank or 0) + self.kv_lora_rank

    @property
    def _attention_matmul_params(self) -> int:
        d = self.d_model
        if self.is_mla:
            h, qk = self.heads, self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank is None:
                q = d * h * qk
            else:
                q = d * self.q_lora_rank + self.q_lora_rank * h * qk
            kv = d * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv += self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv + self.v_width * d
        weights = 2 * d * self.attn_width + 2 * d * self.kv_width
        if self.biases:
            bias = self.attn_width + 2 * self.kv_width + d
        elif self.qkv_bias:
            bias = self.attn_width + 2 * self.kv_width
        else:
            bias = 0
        return weights + bias

    @property
    def attention_params_per_layer(self) -> int:
        """Q, K, V, O (with biases where present; MLA: its projections and the norms on its latents)."""
        return self._attention_matmul_params + self._attention_norm_params

    def _ffn_params(self, f: int) -> int:
        d = self.d_model
        weights = (3 if self.gated_ffn else 2) * d * f
        bias = ((2 if self.gated_ffn else 1) * f + d) if self.biases else 0
        return weights + bias

    @property
    def ffn_params_per_expert(self) -> int:
        """One routed or shared expert (``expert_ffn_size`` wide); for a dense model, the FFN."""
        return self._ffn_params(self.expert_ffn_size)

    @property
    def dense_ffn_params(self) -> int:
        """The FFN of a dense layer (``ffn_size`` wide)."""
        return self._ffn_params(self.ffn_size)

    @property
    def router_params_per_layer(self) -> int:
        """The router of one MoE layer (d·experts)."""
        return self.d_model * self.experts if self.experts > 1 else 0

    @property
    def pooler_params(self) -> int:
        """BERT's pooler: d×d weights + d bias (0 without ``pooler``)."""
        return self.d_model * self.d_model + self.d_model if self.pooler else 0

    @property
    def _layer_norm_params(self) -> int:
        return self.norms_per_layer * self._norm_params_per_norm + (2 * self.dim_head if self.qk_norm else 0)

    @property
    def _outside_layer_norms(self) -> int:
        """Norm parameters outside the layers: the final norm and the embedding norm, where present."""
        return self._norm_params_per_norm * (int(self.final_norm) + int(self.embedding_norm))

    @property
    def embedding_params(self) -> int:
        """Input embedding + untied output head + learned positions + segment embeddings."""
        v, d = self.vocab, self.d_model
        emb = v * d * (1 if self.tied_embeddings else 2)
        return emb + (self.seq_len * d if self.learned_positions else 0) + self.segment_embeddings * d

    def _ffn_over_layers(self, routed: int) -> int:
        """FFN parameters of every layer: dense layers' FFN, MoE layers' ``routed`` + shared experts."""
        moe = (routed + self.shared_experts) * self.ffn_params_per_expert
        return self.dense_layers * self.dense_ffn_params + self.moe_layers * moe

    def _all_layers_params(self, routed: int) -> int:
        """Parameters of every layer, with ``routed`` routed experts counted per MoE layer."""
        return (
            self.layers * (self.attention_params_per_layer + self._layer_norm_params)
            + self._ffn_over_layers(routed)
            + self.moe_layers * self.router_params_per_layer
        )

    def _layer_params(self, experts: int) -> int | float:
        """One layer with ``experts`` routed experts counted; where layers differ (dense and MoE layers),
        the mean layer (the stack's parameters / layers)."""
        total = self._all_layers_params(experts)
        return total // self.layers if total % self.layers == 0 else total / self.layers

    @property
    def params_per_layer(self) -> int | float:
        """Parameters of one transformer layer, every expert counted (the mean layer where layers differ)."""
        return self._layer_params(self.experts)

    @property
    def non_embedding_params(self) -> int:
        """All parameters except embeddings/head/positions (total over experts)."""
        return self._all_layers_params(self.experts) + self._outside_layer_norms + self.pooler_params

    @property
    def params(self) -> int:
        """Total parameters (what memory holds)."""
        return self.non_embedding_params + self.embedding_params

    @property
    def active_non_embedding_params(self) -> int:
        return self._all_layers_params(self.active_experts) + self._outside_layer_norms + self.pooler_params

    @property
    def active_params(self) -> int:
        """Parameters one token uses: total less the routed experts it does not visit (shared experts count)."""
        return self.active_non_embedding_params + self.embedding_params

    def block_matmul_params(self, active: bool = False) -> int:
        """The layers' matmul weights (attention projections with their biases, FFNs or experts, routers):
        every expert, or with ``active`` only the routed experts a token visits (plus the shared ones)."""
        routed = self.active_experts if active else self.experts
        return (
            self.layers * self._attention_matmul_params
            + self._ffn_over_layers(routed)
            + self.moe_layers * self.router_params_per_layer
        )

    @property
    def matmul_params(self) -> int:
        """PaLM's N (Chowdhery et al. 2022, App. B: 6·N + 12·L·H·Q·T FLOPs per training token): the weights that
        take part in a matmul per token, i.e. every layer's active matmuls (attention projections with their
        biases, the active and shared experts' FFN or a dense layer's FFN, the router) plus the output head
        (V·d, a matmul even when tied). Not counted: the input embedding and positions (lookups), norms
        (elementwise, MLA's latent norms included) and BERT's pooler (first token only). ``ModelArrays``
        (estimator/arrays.py) takes this figure (and derives a layer's share from it)."""
        return self.block_matmul_params(active=True) + self.vocab * self.d_model

    def param_breakdown(self, active: bool = False) -> dict[str, int]:
        """Parameters by part; the values sum to :attr:`params` (or :attr:`active_params` when ``active``).

        Keys: token_embedding (V·d + segment rows), position_embedding, output_head (V·d when untied),
        attention (MLA's latent norms included), ffn (dense FFNs and every expert, or only the active and
        shared ones), router, norms, pooler.
        """
        v, d, n = self.vocab, self.d_model, self.layers
        experts = self.active_experts if active else self.experts
        return {
            "token_embedding": v * d + self.segment_embeddings * d,
            "position_embedding": self.seq_len * d if self.learned_positions else 0,
            "output_head": 0 if self.tied_embeddings else v * d,
            "attention": n * self.attention_params_per_layer,
            "ffn": self._ffn_over_layers(experts),
            "router": self.moe_layers * self.router_params_per_layer,
            "norms": n * self._layer_norm_params + self._outside_layer_norms,
            "pooler": self.pooler_params,
        }
