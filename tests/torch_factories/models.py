"""Small hand-built PyTorch models for ``--torch-model`` tests (no torchvision): written from the papers.

* ResNet-50: He et al. 2016, "Deep Residual Learning for Image Recognition", Table 1 (bottleneck blocks
  [3, 4, 6, 3], widths 64-128-256-512, expansion 4, 1000 classes, 224×224 input).
* ViT-B/16: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", Table 1 (12 layers, width 768, MLP 3072,
  12 heads, 16×16 patches, 224×224 input: 196 patches + a class token).
* DLRM: Naumov et al. 2019, "Deep Learning Recommendation Model for Personalization and Recommendation
  Systems", in the configuration of facebookresearch/dlrm ``dlrm_s_pytorch.py`` for "Criteo Terabyte MLPerf
  training" (``--max-ind-range=40000000``): 26 tables of 128-wide embeddings, bottom MLP 13-512-256-128, dot
  interaction of the 27 vectors (351 pairs) + the bottom output = 479 inputs to the top MLP 1024-1024-512-256-1.
* a tiny GPT-shaped decoder, a factory that raises and one that returns no module (bad input).
"""

from __future__ import annotations

import torch
from torch import nn

CRITEO_TERABYTE_ROWS = (
    39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10, 2208, 11938, 155, 4,
    976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36,
)  # fmt: skip


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out),
        )  # fmt: skip
        self.down = None
        if stride != 1 or cin != out:
            self.down = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self, classes=1000, image=224):
        super().__init__()
        self.image = image
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = 4 * width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    def example_inputs(self, batch):
        return (torch.zeros(batch, 3, self.image, self.image),)


class Block(nn.Module):
    """Pre-LN transformer block, attention written out (QKᵀ and A·V as matmuls)."""

    def __init__(self, d, heads, ffn, causal=False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
        if self.causal:
            scores = scores + torch.full((s, s), float("-inf")).triu(1)
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        x = x + self.proj(a)
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    def __init__(self, layers=12, d=768, heads=12, ffn=3072, patch=16, image=224, classes=1000):
        super().__init__()
        self.image = image
        self.patch = nn.Conv2d(3, d, patch, patch)
        tokens = (image // patch) ** 2 + 1
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, tokens, d))
        self.blocks = nn.Sequential(*(Block(d, heads, ffn) for _ in range(layers)))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.ln(self.blocks(x))[:, 0])

    def example_inputs(self, batch):
        return (torch.zeros(batch, 3, self.image, self.image),)


def _mlp(widths, last_sigmoid=False):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers += [nn.Linear(a, b), nn.Sigmoid() if last_sigmoid and i == len(widths) - 2 else nn.ReLU()]
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, rows=CRITEO_TERABYTE_ROWS, dim=128, bottom=(13, 512, 256, 128), top=(1024, 1024, 512, 256, 1)):
        super().__init__()
        self.tables = nn.ModuleList(nn.EmbeddingBag(n, dim, mode="sum") for n in rows)
        self.bottom = _mlp(bottom)
        vectors = len(rows) + 1
        self.top = _mlp((dim + vectors * (vectors - 1) // 2, *top), last_sigmoid=True)
        self.pairs = torch.tril_indices(vectors, vectors, -1, device="cpu")

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        looked_up = [t(sparse[:, i : i + 1]) for i, t in enumerate(self.tables)]
        t = torch.stack([x, *looked_up], 1)
        z = t @ t.transpose(1, 2)
        pairs = z[:, self.pairs[0], self.pairs[1]]
        return self.top(torch.cat([x, pairs], 1))

    def example_inputs(self, batch):
        return torch.zeros(batch, 13), torch.zeros(batch, len(self.tables), dtype=torch.long)


def resnet50():
    return ResNet50()


def vit_b16():
    return ViT()


def dlrm_criteo_terabyte():
    return DLRM()


def tiny_gpt(layers=2, d=64, heads=4, seq=32, vocab=100):
    """A GPT-shaped decoder: it becomes a measured model like any other."""

    class TinyGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            self.blocks = nn.Sequential(*(Block(d, heads, 4 * d, causal=True) for _ in range(layers)))
            self.head = nn.Linear(d, vocab, bias=False)

        def forward(self, ids):
            return self.head(self.blocks(self.embed(ids)))

    model = TinyGPT()
    return model, lambda batch: (torch.zeros(batch, seq, dtype=torch.long),)


def small_mlp():
    """Two linear layers (a hand count: 2 · (32·64 + 64·8) FLOPs per sample forward)."""
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    return model, lambda batch: (torch.zeros(batch, 32),)


def raises():
    raise RuntimeError("weights file missing")


def not_a_module():
    return {"layers": 3}


def no_inputs():
    return nn.Linear(4, 4)
