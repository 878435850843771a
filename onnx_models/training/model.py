"""The EMSYNC-style music transformer: a decoder-only GPT you can read top to bottom.

Follows nanoGPT (token + position embeddings, pre-norm blocks of causal self-attention and
an MLP, weight-tied output), with two additions from EMSYNC (arXiv:2502.10154):

* **conditioning**: every token carries continuous ``valence`` and ``arousal`` (in [-1, 1])
  and its **boundary offset**, the seconds until the next scene cut (capped at
  ``offset_cap``). They are turned into a vector (the raw values plus sines/cosines of the
  offset at several frequencies, so "0.1 s to the cut" and "0.3 s" are easy to tell apart)
  and added to the token embedding through a small MLP; within ``n_offset_steps`` shift
  units of the cut the exact count of units left also gets its own learned vector, so the
  time shift that lands on the cut is a lookup, not arithmetic;
* **a KV cache** for generation: ``forward`` takes the keys/values of the tokens seen so far
  as one tensor ``past`` of shape ``[n_layer, 2, batch, n_head, past_len, head_dim]`` and
  returns the updated one, which is what the ONNX export names ``past_key_values`` /
  ``present_key_values``.

Only training and export import this file (torch); the runtime runs the ONNX export.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class ModelConfig:
    vocab_size: int
    block_size: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.1
    offset_cap: float = 8.0  # seconds; EMSYNC caps boundary offsets at 8 s
    n_offset_freqs: int = 8
    offset_unit: float = 0.01  # seconds; the vocabulary's time-shift unit
    n_offset_steps: int = 0  # offsets up to this many units also get a learned embedding each (0: none)
    offset_logit_bias: bool = False  # and a learned bias on every output logit per such offset
    mood_blocks: bool = False  # every block's layer norms also scaled and shifted by (valence, arousal)

    def to_dict(self) -> dict:
        return asdict(self)


class Conditioning(nn.Module):
    """(valence, arousal, offset) per token -> an embedding added to the token's."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cap = cfg.offset_cap
        # frequencies from one cycle per cap to one cycle per ~0.1 s
        freqs = torch.logspace(math.log10(2 * math.pi / cfg.offset_cap), math.log10(2 * math.pi / 0.1), cfg.n_offset_freqs)
        self.register_buffer("freqs", freqs, persistent=False)
        n_in = 4 + 2 * cfg.n_offset_freqs
        self.net = nn.Sequential(nn.Linear(n_in, cfg.n_embd), nn.GELU(), nn.Linear(cfg.n_embd, cfg.n_embd))
        # close to the cut, the exact number of time-shift units left: one learned vector per
        # count (the last one for "further"), so "37 units to go" maps straight to SHIFT(37)
        self.unit, self.n_steps = cfg.offset_unit, cfg.n_offset_steps
        if self.n_steps:
            self.steps = nn.Embedding(self.n_steps + 2, cfg.n_embd)

    def forward(self, valence, arousal, offset):
        off = offset.clamp(0, self.cap)
        phase = off.unsqueeze(-1) * self.freqs
        near = (off < 0.5).to(off.dtype)  # a flag for "the cut is about to come"
        x = torch.cat(
            [valence.unsqueeze(-1), arousal.unsqueeze(-1), (off / self.cap).unsqueeze(-1), near.unsqueeze(-1),
             torch.sin(phase), torch.cos(phase)],
            dim=-1,
        )
        out = self.net(x)
        if self.n_steps:
            out = out + self.steps(self.steps_index(offset))
        return out

    def steps_index(self, offset):
        """Whole shift units left to the cut, ``n_offset_steps + 1`` for anything further."""
        return torch.round(offset.clamp(0, self.cap) / self.unit).clamp(0, self.n_steps + 1).long()


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x, past_kv=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        if past_kv is not None:  # [2, B, H, P, D]
            k = torch.cat([past_kv[0], k], dim=2)
            v = torch.cat([past_kv[1], v], dim=2)
        present = torch.stack([k, v])
        if past_kv is None and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            # training / prefill: the fused kernel (same maths as below)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.attn_drop.p if self.training else 0.0)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.resid_drop(self.c_proj(y)), present
        S = k.shape[2]  # past + new
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        # query i (at absolute position S - T + i) sees keys j <= S - T + i
        qi = torch.arange(T, device=x.device).unsqueeze(1) + (S - T)
        kj = torch.arange(S, device=x.device).unsqueeze(0)
        att = att.masked_fill(kj > qi, float("-inf"))
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.c_proj(y)), present


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm attention and MLP. With ``mood_blocks`` the mood also scales and shifts both
    normalised inputs (adaptive layer norm, zero at start): valence reaches every layer
    directly instead of fading from the input embedding under the context's pull."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)
        if cfg.mood_blocks:
            self.mood = nn.Linear(2, 4 * cfg.n_embd)

    def norm1(self, x, mood=None):
        """The attention's input: ``ln1(x)``, scaled and shifted by the mood if the block has it."""
        return self._norm(self.ln1(x), mood, 0)

    def norm2(self, x, mood=None):
        """The MLP's input, likewise."""
        return self._norm(self.ln2(x), mood, 1)

    def _norm(self, h, mood, part):
        if not hasattr(self, "mood"):
            return h
        scale, shift = self.mood(mood).chunk(4, dim=-1)[2 * part:2 * part + 2]
        return h * (1 + scale) + shift

    def forward(self, x, past_kv=None, mood=None):
        a, present = self.attn(self.norm1(x, mood), past_kv)
        x = x + a
        x = x + self.mlp(self.norm2(x, mood))
        return x, present


class MusicTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.cond = Conditioning(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        if cfg.n_offset_steps and cfg.offset_logit_bias:
            # log-odds of each next token given the exact units left to the cut: the direct
            # path for "never shift past the cut, and put the chord on it" (zero at start)
            self.offset_bias = nn.Embedding(cfg.n_offset_steps + 2, cfg.vocab_size)
        self.apply(self._init)
        if hasattr(self, "offset_bias"):
            nn.init.zeros_(self.offset_bias.weight)
        for name, p in self.named_parameters():
            if ".mood." in name:  # adaptive norms start as the identity
                nn.init.zeros_(p)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()

    def forward(self, idx, valence, arousal, offset, past=None, targets=None):
        """Logits for each position (and the loss against ``targets``), plus the new cache.

        ``past``: ``[n_layer, 2, B, n_head, past_len, head_dim]`` or None.
        """
        B, T = idx.shape
        past_len = 0 if past is None else past.shape[4]
        pos = torch.arange(past_len, past_len + T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos) + self.cond(valence, arousal, offset)
        x = self.drop(x)
        mood = self.mood(valence, arousal)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if past is None else past[i], mood)
            presents.append(present)
        logits = self.lm_head(self.ln_f(x))
        if hasattr(self, "offset_bias"):
            logits = logits + self.offset_bias(self.cond.steps_index(offset))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss, torch.stack(presents)

    def mood(self, valence, arousal):
        """The per-token input of the blocks' mood norms (None without them)."""
        return torch.stack([valence, arousal], dim=-1) if self.cfg.mood_blocks else None

    def configure_optimizer(self, lr: float, weight_decay: float = 0.1, betas=(0.9, 0.95), bias_lr_mult: float = 20.0,
                           mood_lr_mult: float = 5.0):
        """AdamW; the offset logit bias learns ``bias_lr_mult`` times faster without decay (its
        entries must reach log-odds of several nats, far from the 0.02 scale of the rest); the
        mood norms, new on a trained model, ``mood_lr_mult`` times faster, also without decay."""
        fast = [p for n, p in self.named_parameters() if n.startswith("offset_bias.")]
        mood = [p for n, p in self.named_parameters() if ".mood." in n]
        rest = [(n, p) for n, p in self.named_parameters() if not n.startswith("offset_bias.") and ".mood." not in n]
        groups = [{"params": [p for n, p in rest if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for n, p in rest if p.dim() < 2], "weight_decay": 0.0}]
        if fast:
            groups.append({"params": fast, "weight_decay": 0.0, "lr_mult": bias_lr_mult})
        if mood:
            groups.append({"params": mood, "weight_decay": 0.0, "lr_mult": mood_lr_mult})
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
