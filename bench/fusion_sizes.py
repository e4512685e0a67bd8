"""Fusion network sizes on this machine: ONNX Runtime latency per window and training cost.

    python -m bench.fusion_sizes [--threads 2] [--json out.json]

Every size is exported and timed in the same run; figures are reported as ratios to the
shipped default (NetworkConfig()), with median, min and max over repeats.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from app.contract import MODALITIES, FeatureSpec, NetworkConfig, OutputSemantics

SIZES: dict[str, dict] = {
    "default": {},
    "small (conv 32, lstm 32)": {"conv_channels": 32, "lstm_hidden": 32, "embed_dim": 64},
    "wide (lstm 128)": {"lstm_hidden": 128, "conv_channels": 128},
    "deep (2 lstm layers)": {"lstm_layers": 2},
    "finer audio (pool 2)": {"pool_audio": 2},
}


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    import onnxruntime as ort
    import torch

    from training.export import export_onnx, random_inputs
    from training.network import INPUT_NAMES, FusionNet

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    features, semantics = FeatureSpec(), OutputSemantics()
    lengths = {m: features.frames_per_window(m) for m in MODALITIES}
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in SIZES.items():
            cfg = NetworkConfig(**overrides)
            net = FusionNet(features, cfg, semantics)
            path = Path(tmp) / "m.onnx"
            export_onnx(net, features, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            row = {"size": name, "params": sum(p.numel() for p in net.parameters())}
            for batch in (1, 8):
                inputs = random_inputs(features, batch, lengths, rng)
                times = _timed(lambda inputs=inputs, session=session: session.run(None, inputs), args.repeats)
                row[f"ort_ms_per_window_b{batch}"] = [1000 * t / batch for t in times]
            net.train()
            optimiser = torch.optim.AdamW(net.parameters())
            batch = {k: torch.from_numpy(v) for k, v in random_inputs(features, 16, lengths, rng).items()}

            def step(net=net, optimiser=optimiser, batch=batch) -> None:
                loss = net(*(batch[k] for k in INPUT_NAMES))[1].sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

            row["train_ms_per_window"] = [1000 * t / 16 for t in _timed(step, max(3, args.repeats // 2))]
            rows.append(row)
    base = {k: float(np.median(v)) for k, v in rows[0].items() if isinstance(v, list)}
    print("| size | params | ORT ms/window b1 | ORT ms/window b8 | train ms/window |")
    print("|---|---|---|---|---|")
    for row in rows:
        cells = []
        for key in ("ort_ms_per_window_b1", "ort_ms_per_window_b8", "train_ms_per_window"):
            v = row[key]
            med = float(np.median(v))
            cells.append(f"{med:.2f} [{min(v):.2f}-{max(v):.2f}] ({med / base[key]:.2f}x)")
        print(f"| {row['size']} | {row['params']:,} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
