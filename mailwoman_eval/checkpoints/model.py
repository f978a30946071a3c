"""An upstream-compatible `MailwomanCoarseEncoder` + linear-chain CRF (PyTorch).

Written from the module description in upstream-formats.md §1.4–§1.6 so that an upstream
`pytorch_model.bin` loads with strict=True and produces the same logits. It is also what
`scripts/train_demo.py` trains. Importing this module imports torch; keep it off fast paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mailwoman_eval.decode import python_masks


class LinearChainCRF(nn.Module):
    def __init__(self, labels: Sequence[str]):
        super().__init__()
        n = len(labels)
        self.num_labels = n
        self.transitions = nn.Parameter(torch.empty(n, n).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(n).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(n).uniform_(-0.1, 0.1))
        # crf.py's BIO rule (upstream-formats.md §1.6), the same masks the upstream-eval profile adds
        mask, start = python_masks(labels)
        self.register_buffer("transition_mask", torch.from_numpy(mask), persistent=True)
        self.register_buffer("start_mask", torch.from_numpy(start), persistent=True)

    def _masked(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transitions + self.transition_mask, self.start_transitions + self.start_mask

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per sequence (B,). `mask` is 1 on real positions, left-aligned."""
        trans, start = self._masked()
        # -inf masks make 0 * -inf = nan in the gold path score; use a large finite negative there.
        trans = torch.nan_to_num(trans, neginf=-1e4)
        start = torch.nan_to_num(start, neginf=-1e4)
        B, S, _ = emissions.shape
        maskf = mask.to(emissions.dtype)
        idx = torch.arange(B)
        score = start[tags[:, 0]] + emissions[idx, 0, tags[:, 0]]
        for t in range(1, S):
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[idx, t, tags[:, t]]
            score = score + step * maskf[:, t]
        lengths = mask.sum(1).long()
        last = tags[idx, (lengths - 1).clamp(min=0)]
        score = score + self.end_transitions[last]
        alpha = start[None, :] + emissions[:, 0]
        for t in range(1, S):
            nxt = torch.logsumexp(alpha[:, :, None] + trans[None] + emissions[:, t, None, :], dim=1)
            alpha = torch.where(mask[:, t, None].bool(), nxt, alpha)
        log_z = torch.logsumexp(alpha + self.end_transitions[None], dim=1)
        return log_z - score


class EncoderBlock(nn.Module):
    """Pre-norm block: x + drop(MHA(ln1 x)); x + drop(ff(ln2 x)) (upstream-formats.md §1.4)."""

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, bias=True, batch_first=True)
        self.ln2 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)
        x = x + self.drop(a)
        return x + self.drop(self.ff(self.ln2(x)))


class MailwomanCoarseEncoder(nn.Module):
    def __init__(self, config: dict, labels: Sequence[str]):
        super().__init__()
        h = int(config["hidden_size"])
        self.config = dict(config)
        self.labels = list(labels)
        self.pad_token_id = int(config.get("pad_token_id") or 0)  # HF configs may say null
        drop = float(config.get("hidden_dropout_prob", 0.1))
        self.token_embeddings = nn.Embedding(int(config["vocab_size"]), h, padding_idx=self.pad_token_id)
        self.position_embeddings = nn.Embedding(int(config["max_position_embeddings"]), h)
        self.input_ln = nn.LayerNorm(h)
        self.input_dropout = nn.Dropout(drop)
        self.blocks = nn.ModuleList(
            EncoderBlock(h, int(config["num_attention_heads"]), int(config["intermediate_size"]), drop)
            for _ in range(int(config["num_hidden_layers"]))
        )
        self.final_ln = nn.LayerNorm(h)
        self.classifier = nn.Linear(h, int(config["num_labels"]))
        self.crf = LinearChainCRF(self.labels) if config.get("use_crf", False) else None
        cw = config.get("class_weights")
        if cw:
            self.register_buffer("class_weights", torch.tensor([float(cw.get(lab, 1.0)) for lab in self.labels]))
        else:
            self.class_weights = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        seq = input_ids.shape[1]
        if seq > self.position_embeddings.num_embeddings:
            raise ValueError(f"sequence of {seq} pieces exceeds max_position_embeddings")
        pos = torch.arange(seq, device=input_ids.device)
        x = self.token_embeddings(input_ids) + self.position_embeddings(pos)[None]
        x = self.input_dropout(self.input_ln(x))
        kpm = None if attention_mask is None else attention_mask == 0
        for block in self.blocks:
            x = block(x, kpm)
        return self.classifier(self.final_ln(x))

    def loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE (ignore -100) + crf_loss_weight × CRF NLL (mean over sequences), as upstream trains."""
        logits = self(input_ids, attention_mask)
        ce = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=-100,
            weight=self.class_weights,
            label_smoothing=float(self.config.get("label_smoothing", 0.0)),
        )
        if self.crf is None:
            return ce
        nll = self.crf.nll(logits, labels.clamp(min=0), attention_mask)
        if self.config.get("crf_normalization", "per_sequence") == "per_token":
            crf = nll.sum() / attention_mask.sum().clamp(min=1)
        else:
            crf = nll.mean()
        return ce + float(self.config.get("crf_loss_weight", 0.1)) * crf


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

