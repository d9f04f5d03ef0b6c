"""Recording diarization on onnxruntime: segmentation + embeddings + clustering, no torch.

The models are pyannote's segmentation-3.0 (who speaks in each 10 s window,
up to three local voices per window, frame by frame) and CAM++ (a speaker
embedding from 80-bin Kaldi filterbanks), exported to ONNX once by
scripts/build_diarization_models.py (a build-time tool that needs torch)
into a model directory. The algorithm is pyannote 3's:

1. segment overlapping 10 s windows; each window's local voices are
   frame-level activities (powerset classes decoded to at most two at once);
2. embed each local voice from its audio in that window (overlapped frames
   left out when enough clean speech remains);
3. cluster the reliable embeddings (agglomerative, average linkage, cosine
   distance threshold); short local voices join the nearest cluster;
4. rebuild the recording's timeline: per frame, the number of voices the
   windows agree on, taken from the clusters with the most activity there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from media.speakers.fbank import fbank

__all__ = [
    "MANIFEST",
    "DiarizationModelError",
    "OnnxDiarizationOptions",
    "OnnxDiarizer",
    "RawTurn",
]

MANIFEST = "diarization_models.json"
_FILES = ("segmentation.onnx", "embedding.onnx")


class DiarizationModelError(RuntimeError):
    """The ONNX diarization models are missing, incomplete or unreadable."""


@dataclass(frozen=True, slots=True)
class OnnxDiarizationOptions:
    #: Seconds between the starts of consecutive 10 s segmentation windows.
    step_s: float = 1.0
    #: Cosine distance under which two voices' embeddings are merged (CAM++ on
    #: 3 s prompts of real telephone speech: same voice ~0.14, different voices 0.42-0.58;
    #: short turns sit closer, and 0.6 merged the pyannote sample's two voices).
    threshold: float = 0.4
    #: A local voice with less speech than this is not clustered; it joins the nearest voice.
    min_cluster_speech_s: float = 1.0
    #: Below this a local voice is not embedded at all (its frames are dropped).
    min_embed_speech_s: float = 0.25
    #: Gaps shorter than this inside one voice's speech are bridged.
    min_gap_s: float = 0.1


@dataclass(frozen=True, slots=True)
class RawTurn:
    start_ms: int
    end_ms: int
    cluster: int


def _session(path: Path):
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"], sess_options=opts
    )


def load_manifest(model_dir: Path, verify: bool = True) -> dict:
    """The manifest of a model directory; raises DiarizationModelError if anything is off."""
    model_dir = Path(model_dir)
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DiarizationModelError(
            f"no diarization models in {model_dir} ({exc}); run scripts/build_diarization_models.py"
        ) from exc
    for name in _FILES:
        if not (model_dir / name).is_file():
            raise DiarizationModelError(
                f"{model_dir / name} is missing; run scripts/build_diarization_models.py"
            )
    for name in _FILES:
        path = model_dir / name
        if verify and hashlib.sha256(path.read_bytes()).hexdigest() != files.get(name):
            raise DiarizationModelError(
                f"{path} does not match its manifest (partial or foreign file); "
                "run scripts/build_diarization_models.py again"
            )
    return manifest


def _powerset(local: int, max_set: int) -> np.ndarray:
    rows = []
    for size in range(max_set + 1):
        for combo in combinations(range(local), size):
            row = np.zeros(local, np.float32)
            row[list(combo)] = 1.0
            rows.append(row)
    return np.stack(rows)


class OnnxDiarizer:
    """Loaded models; thread-safe, one instance serves every recording of a process."""

    def __init__(self, model_dir: str | Path, options: OnnxDiarizationOptions | None = None):
        self.model_dir = Path(model_dir)
        self.options = options or OnnxDiarizationOptions()
        meta = load_manifest(self.model_dir)
        self.rate = int(meta["sample_rate"])
        self.window = int(meta["window_s"] * self.rate)
        self.frame_step = float(meta["frame_step_s"])
        self.frame_duration = float(meta["frame_duration_s"])
        self.frame_start = float(meta["frame_start_s"])
        self.bins = int(meta["fbank_bins"])
        self.mapping = _powerset(int(meta["local_speakers"]), int(meta["powerset_max_speakers"]))
        try:
            self._seg = _session(self.model_dir / "segmentation.onnx")
            self._emb = _session(self.model_dir / "embedding.onnx")
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise DiarizationModelError(f"cannot load diarization models: {exc}") from exc
        self._lock = threading.Lock()

    # -- models ------------------------------------------------------------------------

    def segment(self, wav: np.ndarray) -> tuple[np.ndarray, int]:
        """(chunks, frames, local voices) binary activity and the step in samples."""
        step = max(1, round(self.options.step_s * self.rate))
        starts = list(range(0, max(1, len(wav) - self.window) + 1, step))
        if len(wav) > self.window and (len(wav) - self.window) % step:
            starts.append(starts[-1] + step)
        out = []
        for first in range(0, len(starts), 16):
            batch = np.zeros((len(starts[first : first + 16]), 1, self.window), np.float32)
            for row, s in enumerate(starts[first : first + 16]):
                piece = wav[s : s + self.window]
                batch[row, 0, : len(piece)] = piece
            with self._lock:
                (logits,) = self._seg.run(None, {"waveform": batch})
            out.append(self.mapping[np.argmax(logits, axis=-1)])
        return np.concatenate(out), step

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """Unit CAM++ embedding of a float 16 kHz waveform."""
        feats = fbank(wav, self.bins, self.rate)
        feats = feats - feats.mean(axis=0, keepdims=True)
        with self._lock:
            (emb,) = self._emb.run(None, {"fbank": feats[None]})
        emb = emb[0].astype(np.float64)
        return emb / max(np.linalg.norm(emb), 1e-12)

    # -- pipeline ----------------------------------------------------------------------

    def __call__(self, wav: np.ndarray) -> list[RawTurn]:
        """Turns of a float32 16 kHz waveform (-1..1), clusters numbered from 0, in time order."""
        opts = self.options
        wav = np.asarray(wav, np.float32)
        if len(wav) < self.rate // 2:
            return []
        seg, step = self.segment(wav)
        chunks, frames, local = seg.shape
        frame_samples = self.frame_step * self.rate
        clean = seg.sum(axis=2, keepdims=True) == 1

        keys, embs, speech_s = [], [], []
        for c in range(chunks):
            offset = c * step
            for k in range(local):
                active = seg[c, :, k] > 0
                if not active.any():
                    continue
                mask = active & clean[c, :, 0]
                if mask.sum() * self.frame_step < opts.min_cluster_speech_s:
                    mask = active
                seconds = mask.sum() * self.frame_step
                if seconds < opts.min_embed_speech_s:
                    continue
                sample_frame = np.minimum(
                    (np.arange(self.window) / frame_samples).astype(int), frames - 1
                )
                take = mask[sample_frame][: max(0, len(wav) - offset)]
                audio = wav[offset : offset + len(take)][take]
                if len(audio) < self.rate // 4:
                    continue
                keys.append((c, k))
                embs.append(self.embed(audio))
                speech_s.append(seconds)
        if not keys:
            return []
        labels = self._cluster(np.stack(embs), np.array(speech_s))
        clusters = int(labels.max()) + 1

        total_frames = int(np.ceil(len(wav) / frame_samples)) + 1
        score = np.zeros((total_frames, clusters), np.float32)
        count = np.zeros(total_frames, np.float32)
        cover = np.zeros(total_frames, np.float32)
        per_chunk = np.zeros((chunks, frames, clusters), np.float32)
        for (c, k), lab in zip(keys, labels):
            per_chunk[c, :, lab] = np.maximum(per_chunk[c, :, lab], seg[c, :, k])
        for c in range(chunks):
            first = round(c * step / frame_samples)
            last = min(total_frames, first + frames)
            n = last - first
            score[first:last] += per_chunk[c, :n]
            count[first:last] += seg[c, :n].sum(axis=1)
            cover[first:last] += 1
        cover = np.maximum(cover, 1)
        score /= cover[:, None]
        voices = np.rint(count / cover).astype(int)
        active = np.zeros_like(score, dtype=bool)
        order = np.argsort(-score, axis=1)
        for f in np.nonzero(voices)[0]:
            active[f, order[f, : voices[f]]] = True
        return self._turns(active, len(wav))

    def _cluster(self, embs: np.ndarray, speech_s: np.ndarray) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        opts = self.options
        reliable = speech_s >= opts.min_cluster_speech_s
        if reliable.sum() < 1:
            reliable[:] = True
        if reliable.sum() == 1:
            base = np.zeros(1, int)
        else:
            base = AgglomerativeClustering(
                n_clusters=None,
                metric="cosine",
                linkage="average",
                distance_threshold=opts.threshold,
            ).fit_predict(embs[reliable])
        centroids = np.stack(
            [embs[reliable][base == j].mean(axis=0) for j in range(base.max() + 1)]
        )
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        labels = np.argmax(embs @ centroids.T, axis=1)
        labels[reliable] = base
        # number clusters by first appearance
        seen: dict[int, int] = {}
        for lab in labels:
            seen.setdefault(int(lab), len(seen))
        return np.array([seen[int(lab)] for lab in labels])

    def _turns(self, active: np.ndarray, samples: int) -> list[RawTurn]:
        gap = round(self.options.min_gap_s / self.frame_step)
        end_ms = 1000 * samples // self.rate
        turns = []
        for j in range(active.shape[1]):
            on = active[:, j].astype(np.int8)
            edges = np.diff(np.concatenate([[0], on, [0]]))
            starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            merged: list[list[int]] = []
            for a, b in zip(starts, stops):
                if merged and a - merged[-1][1] <= gap:
                    merged[-1][1] = b
                else:
                    merged.append([a, b])
            for a, b in merged:
                start = self.frame_start + a * self.frame_step + self.frame_duration / 2
                stop = self.frame_start + b * self.frame_step + self.frame_duration / 2
                s_ms = round(1000 * (start - self.frame_step / 2))
                e_ms = min(end_ms, round(1000 * (stop - self.frame_step / 2)))
                if e_ms > s_ms:
                    turns.append(RawTurn(max(0, s_ms), e_ms, j))
        return sorted(turns, key=lambda t: (t.start_ms, t.cluster))
