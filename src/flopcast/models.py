"""Model architecture: the spec and its parameter counts (DESIGN §3).

Parameters (decoder-only transformer, as the GPT-3, Llama and PaLM papers count them):
  embeddings  V·d (input) + V·d (output head) unless tied
  per layer   2·d·(heads·head_dim)            Q and O projections
              2·d·(kv_heads·head_dim)         K and V projections (GQA/MQA when kv_heads < heads)
              3·d·ffn (gated, SwiGLU) or 2·d·ffn (plain) per expert
              + attention/FFN biases where ``biases`` (GPT-2/3, BERT, Pythia)
              + 2 norms of d (×2 for LayerNorm's bias)
  final norm  d (×2 with LayerNorm bias)
  position    s·d when ``learned_positions`` (GPT-3, BERT)
MoE: every expert's FFN counts toward total parameters (memory); only ``active_experts`` of them
toward active parameters (FLOPs), plus the router d·experts per layer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator


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
    layernorm_bias: bool = False
    experts: PositiveInt = 1
    active_experts: PositiveInt = 1
    published_params: float | None = Field(default=None, gt=0)
    source: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.head_dim is None and self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}; give head_dim")
        if self.n_kv_heads > self.heads or self.heads % self.n_kv_heads:
            raise ValueError(f"kv_heads {self.n_kv_heads} must divide heads {self.heads}")
        if self.active_experts > self.experts:
            raise ValueError(f"active_experts {self.active_experts} exceeds experts {self.experts}")
        return self

    # --- derived shape -------------------------------------------------------------------------
    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def dim_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def attn_width(self) -> int:
        """heads·head_dim: the width of Q and of the attention output (= d_model unless head_dim is set)."""
        return self.heads * self.dim_head

    @property
    def kv_width(self) -> int:
        return self.n_kv_heads * self.dim_head

    @property
    def ffn_size(self) -> int:
        return self.ffn if self.ffn is not None else 4 * self.d_model

    # --- parameter counts ----------------------------------------------------------------------
    @property
    def _norm_params_per_norm(self) -> int:
        return self.d_model * (2 if self.layernorm_bias else 1)

    @property
    def attention_params_per_layer(self) -> int:
        d = self.d_model
        weights = 2 * d * self.attn_width + 2 * d * self.kv_width
        bias = (self.attn_width + 2 * self.kv_width + d) if self.biases else 0
        return weights + bias

    @property
    def ffn_params_per_expert(self) -> int:
        d, f = self.d_model, self.ffn_size
        weights = (3 if self.gated_ffn else 2) * d * f
        bias = ((2 if self.gated_ffn else 1) * f + d) if self.biases else 0
        return weights + bias

    @property
    def router_params_per_layer(self) -> int:
        return self.d_model * self.experts if self.experts > 1 else 0

    @property
    def embedding_params(self) -> int:
        """Input embedding + untied output head + learned positions."""
        v, d = self.vocab, self.d_model
        emb = v * d * (1 if self.tied_embeddings else 2)
        return emb + (self.seq_len * d if self.learned_positions else 0)

    def _layer_params(self, experts: int) -> int:
        return (
            self.attention_params_per_layer
            + experts * self.ffn_params_per_expert
            + self.router_params_per_layer
            + 2 * self._norm_params_per_norm
        )

    @property
    def non_embedding_params(self) -> int:
        """All parameters except embeddings/head/positions (total over experts)."""
        return self.layers * self._layer_params(self.experts) + self._norm_params_per_norm

    @property
    def params(self) -> int:
        """Total parameters (what memory holds)."""
        return self.non_embedding_params + self.embedding_params

    @property
    def active_non_embedding_params(self) -> int:
        return self.layers * self._layer_params(self.active_experts) + self._norm_params_per_norm

    @property
    def active_params(self) -> int:
        return self.active_non_embedding_params + self.embedding_params

    @property
    def matmul_params(self) -> int:
        """Active parameters that take part in a matmul per token: the layers plus the output head
        (V·d, used as a matmul even when tied). The input embedding is a lookup, not a matmul."""
        return self.active_non_embedding_params + self.vocab * self.d_model
