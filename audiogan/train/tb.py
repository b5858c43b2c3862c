"""TensorBoard summaries of a run (rank 0): scalars, and at each evaluation fixed-seed audio
and an image (spectrogram, or piano roll of the generated notes)."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from audiogan.data import complex_spec, shards, spectro
from audiogan.data.audio import SAMPLE_RATE
from audiogan.latent import labels_for_seeds, latents_for_seeds

log = logging.getLogger(__name__)

N_MEDIA = 4          # fixed seeds eval_seed .. eval_seed + 3
PIANO_AUDIO_S = 8.0  # keep event files small
ROLL_STEP_S = 0.05


class TensorBoard:
    def __init__(self, log_dir: str, manifest: dict[str, Any], *, eval_seed: int,
                 latent_dim: int, griffin_lim_iters: int, griffin_lim_momentum: float = 0.0,
                 label_probs: Sequence[float] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir)
        self.manifest, self.griffin_lim_iters = manifest, griffin_lim_iters
        self.griffin_lim_momentum = griffin_lim_momentum
        seeds = [eval_seed + i for i in range(N_MEDIA)]
        self.z = latents_for_seeds(seeds, latent_dim)
        # A conditional generator: the evaluator's labels for the same seeds.
        self.labels = None if label_probs is None else labels_for_seeds(seeds, label_probs)

    def scalars(self, metrics: dict[str, Any], step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and np.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def media(self, generator: torch.nn.Module, step: int) -> None:
        was_training = generator.training
        generator.eval()
        try:
            with torch.no_grad():
                device = next(generator.parameters()).device
                z = self.z.to(device)
                x = (generator(z) if self.labels is None
                     else generator(z, self.labels.to(device))).cpu().numpy()
            if self.manifest["kind"] == "notes":
                self._piano(x, step)
            else:
                self._spectrogram(x, step)
            self.writer.flush()
        # Summaries are a view on training, never a reason to stop it.
        except Exception as exc:  # noqa: BLE001
            log.warning("TensorBoard media at step %d skipped: %s", step, exc)
        finally:
            generator.train(was_training)

    def _piano(self, x: np.ndarray, step: int) -> None:
        notes = shards.from_network(x, self.manifest)  # [N, window, 3]
        for i, seq in enumerate(notes):
            self.writer.add_image(f"piano_roll/{i}", piano_roll(seq)[None], step)
            audio = render_notes(seq)
            if audio is not None:
                self.writer.add_audio(f"audio/{i}", torch.from_numpy(audio)[None], step,
                                      sample_rate=SAMPLE_RATE)

    def _spectrogram(self, x: np.ndarray, step: int) -> None:
        raw = shards.from_network(x, self.manifest)
        if shards.is_complex(self.manifest):
            # The magnitudes as an image (per-image range); audio by the exact inverse.
            images = complex_spec.log_magnitude(raw.astype(np.float64))
            images = (images - images.min(axis=(1, 2), keepdims=True)) / np.maximum(
                np.ptp(images, axis=(1, 2), keepdims=True), 1e-9) * 2 - 1
            audio = np.asarray(complex_spec.synthesise(torch.from_numpy(raw)))
        else:
            images = x[:, 0]
            audio = spectro.griffin_lim(torch.from_numpy(raw).float(),
                                        n_iter=self.griffin_lim_iters,
                                        momentum=self.griffin_lim_momentum).numpy()
        for i, img in enumerate(images):
            # frames x bins -> bins (low at the bottom) x frames, in [0, 1]
            self.writer.add_image(f"spectrogram/{i}", ((img.T[::-1] + 1) / 2)[None].copy(), step)
        for i, clip in enumerate(audio):
            peak = float(np.abs(clip).max()) or 1.0
            self.writer.add_audio(f"audio/{i}", torch.from_numpy(clip / peak)[None].float(), step,
                                  sample_rate=SAMPLE_RATE)

    def close(self) -> None:
        self.writer.close()


def piano_roll(notes: np.ndarray, pitch_min: int = 21, pitch_max: int = 108,
               max_s: float = 30.0) -> np.ndarray:
    """[pitches, frames] float32 in [0, 1] (high pitches on top) of (pitch, step, duration)."""
    onsets = np.cumsum(notes[:, 1])
    frames = int(min(max_s, float(np.max(onsets + notes[:, 2], initial=0.0))) / ROLL_STEP_S) + 1
    roll = np.zeros((pitch_max - pitch_min + 1, frames), np.float32)
    for (pitch, _, dur), onset in zip(notes, onsets):
        a = int(onset / ROLL_STEP_S)
        if a >= frames:
            continue
        b = max(a + 1, min(frames, int((onset + dur) / ROLL_STEP_S)))
        roll[int(pitch) - pitch_min, a:b] = 1.0
    return roll[::-1].copy()


def render_notes(notes: np.ndarray) -> np.ndarray | None:
    """Sine rendering (pretty_midi.synthesize) of the first seconds, peak-normalised."""
    from audiogan.data.notes import notes_to_midi

    audio = notes_to_midi(notes).synthesize(fs=SAMPLE_RATE)[: int(PIANO_AUDIO_S * SAMPLE_RATE)]
    if audio.size == 0:
        return None
    peak = float(np.abs(audio).max()) or 1.0
    return (audio / peak).astype(np.float32)
