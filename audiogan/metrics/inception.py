"""Inception score from the project's digit classifier: exp(E_x KL(p(y|x) || p(y))).

K confidently classified, balanced classes give K; a collapsed set (one class) gives 1.
WaveGAN reports it over the whole sample set; so do we (one split, no averaging of splits,
so the score of n samples is one number with no split-size choice hidden in it).
"""

from __future__ import annotations

import numpy as np
import torch


def inception_score_from_probs(probs: np.ndarray | torch.Tensor) -> float:
    """probs: [N, classes], rows sum to 1."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.numel() == 0:
        return float("nan")
    p = p.clamp_min(1e-12)
    p = p / p.sum(1, keepdim=True)
    p_y = p.mean(0, keepdim=True)
    kl = (p * (p.log() - p_y.log())).sum(1)
    return float(torch.exp(kl.mean()))


@torch.no_grad()
def class_probabilities(classifier: torch.nn.Module, x: np.ndarray | torch.Tensor,
                        batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """Softmax of the classifier over normalised spectrograms [N, 1, frames, bins]."""
    classifier.eval()
    xs = torch.as_tensor(x, dtype=torch.float32)
    out = [torch.softmax(classifier(xs[i:i + batch_size].to(device)), dim=1).cpu()
           for i in range(0, len(xs), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 1)


def inception_score(classifier: torch.nn.Module, x: np.ndarray | torch.Tensor,
                    device: str = "cpu") -> float:
    return inception_score_from_probs(class_probabilities(classifier, x, device=device))
