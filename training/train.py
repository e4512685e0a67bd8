"""Train, select, evaluate, export and ship a fusion model version.

    python -m training.train --version 2

draws seeded synthetic participants (split into train / validation / test), builds
their sessions through the serve-time extractors (cached under .build/corpus), trains
with modality dropout, keeps the epoch with the best validation MAE (never the test
split), reports test metrics per modality subset next to the mean predictor, exports
to ONNX with a parity check against PyTorch and writes
``model_store/fusion/<version>/{model.onnx, manifest.json, checkpoint.pt}``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from app.contract import (
    MODALITIES,
    FeatureSpec,
    FusionManifest,
    NetworkConfig,
    OutputSemantics,
    Provenance,
    io_specs,
    sha256_file,
)
from training.data import WindowSet, load_windows
from training.evaluate import evaluate, format_report, onnx_runner, predict_participants
from training.export import OPSET, PARITY_TOLERANCE, export_onnx, parity
from training.network import INPUT_NAMES, FusionNet, masked_softmax, soft_labels
from training.synth.corpus import build_corpus
from training.synth.participants import describe_totals, draw_participants

TEXT_ENCODER_DIR = Path("model_store/text_encoder/1")
# model selection: mean validation MAE over these subsets (clients send any of them)
SELECTION_SUBSETS: tuple[tuple[str, ...], ...] = (MODALITIES, ("visual",), ("audio",), ("text",))
ATTENTION_TEMPERATURE = 0.1
ATTENTION_WEIGHT = 1.0


def torch_runner(net: FusionNet):
    def run(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = net(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
        return out[0].numpy(), out[2].numpy()

    return run


def modality_dropout(batch: dict[str, torch.Tensor], p: float, generator: torch.Generator) -> None:
    """With probability ``p`` per window, keep only a random non-empty subset of its modalities,
    as a client that sends fewer would; the rest are removed exactly as absent at serve time."""
    present = batch["modality_mask"]
    n, m = present.shape
    subsets = torch.tensor([[float(bits >> k & 1) for k in range(m)] for bits in range(1, 2**m)])
    pick = subsets[torch.randint(len(subsets), (n,), generator=generator)]
    chosen = torch.rand(n, generator=generator) < p
    kept = torch.where(chosen.unsqueeze(1), present * pick, present)
    # where the subset missed every present modality, keep one that was present
    empty = kept.sum(dim=1) == 0
    if empty.any():
        choice = torch.multinomial(present[empty] + 1e-6, 1, generator=generator).squeeze(1)
        kept[empty] = torch.nn.functional.one_hot(choice, m).float() * present[empty]
    for k, name in enumerate(MODALITIES):
        keep = kept[:, k].view(-1, 1)
        batch[name] = batch[name] * keep.unsqueeze(-1)
        batch[name + "_mask"] = batch[name + "_mask"] * keep
        batch["quality"][:, k] = batch["quality"][:, k] * keep
    batch["modality_mask"] = kept


def item_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) over the last axis."""
    return torch.sum(target * (torch.log(target + 1e-8) - torch.log_softmax(logits, dim=-1)), dim=-1)


def fusion_loss(
    net: FusionNet, batch: dict[str, torch.Tensor], items: torch.Tensor, semantics: OutputSemantics
) -> torch.Tensor:
    """Item KL + expected-score L1 on the fused output, the same per modality alone, and an
    attention target: per item, more weight to the modalities whose own prediction was better."""
    logits, _, weights, emb = net.forward_logits(*(batch[name] for name in INPUT_NAMES))
    target = soft_labels(items, semantics, net.bin_centres)
    expected = torch.softmax(logits, dim=-1) @ net.bin_centres
    fused = item_kl(logits, target).mean() + 0.5 * torch.abs(expected - items.float()).mean()
    present = batch["modality_mask"]  # (B, M)
    uni_kl = item_kl(net.unimodal_logits(emb), target.unsqueeze(1))  # (B, M, H)
    unimodal = (uni_kl * present.unsqueeze(-1)).sum() / (present.sum() * uni_kl.shape[-1]).clamp(min=1.0)
    reliability = masked_softmax(-uni_kl.detach().transpose(1, 2) / ATTENTION_TEMPERATURE, present.unsqueeze(1), dim=-1)
    attention = -(reliability * torch.log(weights + 1e-8)).sum(dim=-1).mean()
    return fused + 0.5 * unimodal + ATTENTION_WEIGHT * attention


def train_model(
    train: WindowSet,
    val: WindowSet,
    features: FeatureSpec,
    cfg: NetworkConfig,
    semantics: OutputSemantics,
    seed: int,
    epochs: int,
    max_seconds: float,
    batch_size: int = 32,
    lr: float = 2e-3,
    dropout_p: float = 0.5,
) -> tuple[FusionNet, list[dict]]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = FusionNet(features, cfg, semantics)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(train.size / batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps_per_epoch)
    train_mean = float(train.items.sum(axis=1).mean())
    val_true = val.items.sum(axis=1)
    rng = np.random.default_rng(seed)
    best, best_mae, history = None, np.inf, []
    started = time.monotonic()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(train.size)
        losses = []
        for start in range(0, train.size, batch_size):
            index = order[start : start + batch_size]
            batch = {k: torch.from_numpy(v) for k, v in train.batch(index).items()}
            modality_dropout(batch, dropout_p, generator)
            items = torch.from_numpy(train.items[train.owner[index]])
            loss = fusion_loss(net, batch, items, semantics)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 2.0)
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        net.eval()
        val_mae = float(
            np.mean(
                [
                    np.mean(
                        np.abs(predict_participants(torch_runner(net), val, keep, semantics, train_mean)[0] - val_true)
                    )
                    for keep in SELECTION_SUBSETS
                ]
            )
        )
        elapsed = time.monotonic() - started
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_mae": val_mae, "elapsed_s": elapsed})
        print(
            f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  val MAE (subset mean) {val_mae:.3f}  {elapsed:.0f}s",
            flush=True,
        )
        if val_mae < best_mae:
            best_mae, best = val_mae, copy.deepcopy(net.state_dict())
        if elapsed > max_seconds:
            print(f"time budget reached after epoch {epoch + 1}", flush=True)
            break
    assert best is not None
    net.load_state_dict(best)
    return net.eval(), history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--store", type=Path, default=Path("model_store/fusion"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train", type=int, default=600, help="training participants")
    parser.add_argument("--val", type=int, default=100, help="validation participants (model selection)")
    parser.add_argument("--test", type=int, default=150, help="held-out test participants (report only)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-minutes", type=float, default=8.0, help="stop training after this long")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".build/corpus"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    started = time.monotonic()
    torch.set_num_threads(args.threads)
    features, cfg, semantics = FeatureSpec(), NetworkConfig(), OutputSemantics()
    people = draw_participants(args.train + args.val + args.test, seed=args.seed)
    print(f"participants: {describe_totals(people)}", flush=True)
    paths = build_corpus(people, args.seed, features, TEXT_ENCODER_DIR, args.cache, args.workers)
    corpus_s = time.monotonic() - started
    print(f"corpus ready in {corpus_s:.0f}s", flush=True)
    splits = {
        "train": paths[: args.train],
        "val": paths[args.train : args.train + args.val],
        "test": paths[args.train + args.val :],
    }
    data = {name: load_windows(p, features) for name, p in splits.items()}
    print({name: d.size for name, d in data.items()}, "windows", flush=True)

    budget = args.max_minutes * 60
    net, history = train_model(data["train"], data["val"], features, cfg, semantics, args.seed, args.epochs, budget)
    train_s = time.monotonic() - started - corpus_s

    out = args.store / str(args.version)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    export_onnx(net, features, onnx_path)
    worst = parity(net, onnx_path, features)
    print(f"ONNX parity: max |ORT - torch| = {worst:.2e}", flush=True)
    if worst > PARITY_TOLERANCE:
        sys.exit(f"parity check failed: {worst} > {PARITY_TOLERANCE}")
    torch.save(net.state_dict(), out / "checkpoint.pt")

    train_mean = float(data["train"].items.sum(axis=1).mean())
    report = evaluate(onnx_runner(onnx_path), data["test"], semantics, train_mean)
    print(format_report(report), flush=True)
    wall = time.monotonic() - started
    inputs, outputs = io_specs(features, semantics)
    manifest = FusionManifest(
        version=args.version,
        sha256=sha256_file(onnx_path),
        opset=OPSET,
        features=features,
        network=cfg,
        inputs=inputs,
        outputs=outputs,
        semantics=semantics,
        provenance=Provenance(
            training_data="synthetic",
            clinically_validated=False,
            seed=args.seed,
            trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command="python -m training.train " + shlex.join(argv if argv is not None else sys.argv[1:]),
            wall_time_s=round(wall, 1),
            corpus={
                "generator": "training.synth (espeak-ng speech, template language, canonical-face motion)",
                "participants": {"train": args.train, "val": args.val, "test": args.test},
                "windows": {name: d.size for name, d in data.items()},
                "totals": describe_totals(people),
                "build_seconds": round(corpus_s, 1),
            },
            metrics={
                "train_mean_total": train_mean,
                "selection": "best mean validation MAE over all modalities and each single one, participant level",
                "train_seconds": round(train_s, 1),
                "epochs_run": len(history),
                "best_val_mae": min(h["val_mae"] for h in history),
                "onnx_parity_max_abs": worst,
                "test": report,
            },
            notes=(
                "Trained only on synthetic participants whose features carry planted effects in the "
                "directions the literature reports. Not clinically validated; not for diagnosis."
            ),
        ),
    )
    manifest.dump(out / "manifest.json")
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    print(f"wrote {out} in {wall:.0f}s", flush=True)


if __name__ == "__main__":
    main()
