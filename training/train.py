"""Train, select, evaluate, export and ship a fusion model version.

    python -m training.train                          # synthetic participants
    python -m training.train --data /corpora/daic-woz  # DAIC-WOZ or E-DAIC (detected)

Synthetic: draws seeded participants (train / validation / test), builds their sessions
through the serve-time extractors (cached under .build/corpus).
Corpus: reads the licensed corpus's own files (training/daic), maps them to the
manifest's features (docs/training.md), cached under .build/daic; E-DAIC defaults to the
landmark-free visual profile ``gaze_pose_v1``.

Both then train with modality dropout and window-space damage (training.damage), keep the
epoch with the best validation (dev) MAE (never the test split), export to ONNX with a
parity check against PyTorch, calibrate the exported model's uncertainty on the validation
split (training.calibrate), evaluate it per modality subset next to the mean predictor
(with interval coverage, ECE and, on synthetic data, the robustness table), and write
``<store>/<version>/{model.onnx, manifest.json, evaluation.json, reliability.png,
checkpoint.pt, history.json}``, by default as the next free version, which the server then serves.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from app.contract import (
    FULL_VISUAL_PROFILE,
    MODALITIES,
    VISUAL_PROFILES,
    Calibration,
    FeatureSpec,
    FusionManifest,
    NetworkConfig,
    OutputSemantics,
    Provenance,
    VisualSpec,
    io_specs,
)
from app.features.visual.space import producible_profiles
from app.model_store import sha256_file, versions
from training.calibrate import calibrate, reliability_png
from training.daic.files import DaicFileError
from training.damage import damage_batch
from training.data import WindowSet, load_windows, participants
from training.evaluate import (
    HEADLINE,
    REPORT_FILE,
    evaluation_report,
    onnx_runner,
    predict_participants,
)
from training.export import OPSET, PARITY_TOLERANCE, export_onnx, parity
from training.network import INPUT_NAMES, FusionNet, masked_softmax, soft_labels
from training.synth.corpus import build_corpus
from training.synth.participants import describe_totals, draw_participants

TEXT_ENCODER_DIR = Path("model_store/text_encoder/1")
# model selection: mean validation MAE over these subsets (clients send any of them)
SELECTION_SUBSETS: tuple[tuple[str, ...], ...] = (MODALITIES, ("visual",), ("audio",), ("text",))
ATTENTION_TEMPERATURE = 0.1


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
    net: FusionNet,
    batch: dict[str, torch.Tensor],
    items: torch.Tensor,
    totals: torch.Tensor,
    semantics: OutputSemantics,
    attention_weight: float = 1.0,
    damaged: torch.Tensor | None = None,
    damage_penalty: float = 0.0,
    clean: dict[str, torch.Tensor] | None = None,
    pair_weight: float = 0.0,
    pair_ratio: float = 0.6,
) -> torch.Tensor:
    """Item KL + expected-score L1 on the fused output, the same per modality alone, and an
    attention target: per item, more weight to the modalities whose own prediction was better.

    Rows whose items are unknown (NaN; a corpus that gives only the total) take the L1 of
    the expected total instead, per item, and no item or attention terms.

    ``damaged`` (B,) names the modality training.damage damaged in each window (-1: none);
    ``damage_penalty`` times the mean weight the heads still give it is added, so weight
    leaves a modality once its input shows damage.

    ``clean`` is the batch before damage: with ``pair_weight``, each damaged window's weight
    for the damaged modality is held against its clean twin's (detached) and charged, relative
    to it, for whatever exceeds ``pair_ratio`` of it: the robustness target (weight falls by 30 %
    or more) as a loss, whatever the damage does to the quality figures."""
    logits, _, weights, emb = net.forward_logits(*(batch[name] for name in INPUT_NAMES))
    known = torch.isfinite(items).all(dim=1)  # (B,)
    share = known.float() / known.float().sum().clamp(min=1.0)  # mean over the rows with items
    target = soft_labels(torch.where(known.unsqueeze(1), items, 0.0), semantics, net.bin_centres)
    expected = torch.softmax(logits, dim=-1) @ net.bin_centres  # (B, H)
    item_l1 = torch.abs(expected - torch.nan_to_num(items)).mean(dim=1)
    total_l1 = torch.abs(expected.sum(dim=1) - totals) / expected.shape[1]
    fused = (item_kl(logits, target).mean(dim=1) * share).sum() + 0.5 * torch.where(known, item_l1, total_l1).mean()
    present = batch["modality_mask"] * known.float().unsqueeze(1)  # (B, M)
    uni_kl = item_kl(net.unimodal_logits(emb), target.unsqueeze(1))  # (B, M, H)
    unimodal = (uni_kl * present.unsqueeze(-1)).sum() / (present.sum() * uni_kl.shape[-1]).clamp(min=1.0)
    reliability = masked_softmax(
        -uni_kl.detach().transpose(1, 2) / ATTENTION_TEMPERATURE, batch["modality_mask"].unsqueeze(1), dim=-1
    )
    attention = (-(reliability * torch.log(weights + 1e-8)).sum(dim=-1).mean(dim=1) * share).sum()
    loss = fused + 0.5 * unimodal + attention_weight * attention
    if damaged is not None and damage_penalty and bool((damaged >= 0).any()):
        rows = torch.nonzero(damaged >= 0).flatten()
        kept = weights[rows, :, damaged[rows]]  # (R, H): the damaged modality's weight per item head
        loss = loss + damage_penalty * kept.mean()
    if damaged is not None and clean is not None and pair_weight and bool((damaged >= 0).any()):
        rows = torch.nonzero(damaged >= 0).flatten()
        with torch.no_grad():
            reference = net.forward_logits(*(clean[name][rows] for name in INPUT_NAMES))[2]
        modality = damaged[rows]
        pick = torch.arange(rows.numel())
        kept = weights[rows][pick, :, modality]  # (R, H)
        before = reference[pick, :, modality]
        loss = loss + pair_weight * (torch.relu(kept - pair_ratio * before) / (before + 0.05)).mean()
    return loss


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
    damage_rate: float = 0.0,
    attention_weight: float = 1.0,
    damage_penalty: float = 0.0,
    pair_weight: float = 0.0,
) -> tuple[FusionNet, list[dict]]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = FusionNet(features, cfg, semantics)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(train.size / batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps_per_epoch)
    train_mean = float(train.totals.mean())
    val_true = val.totals
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
            clean = {k: v.clone() for k, v in batch.items()} if pair_weight else None
            damaged = damage_batch(batch, damage_rate, generator) if damage_rate else None
            owners = train.owner[index]
            items = torch.from_numpy(train.items[owners])
            totals = torch.from_numpy(train.totals[owners].astype(np.float32))
            loss = fusion_loss(
                net, batch, items, totals, semantics, attention_weight, damaged, damage_penalty, clean, pair_weight
            )
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


def summarise_report(report: dict) -> dict:
    """The manifest's short form of the report: all-modality figures per split, and where the rest is."""
    summary: dict = {"report": REPORT_FILE}
    for split, split_report in report["splits"].items():
        summary[split] = {
            "n_participants": split_report["n_participants"],
            **{k: round(v, 4) for k, v in split_report["subsets"]["+".join(MODALITIES)].items() if k in HEADLINE},
        }
    return summary


def next_version(store: Path) -> int:
    """One above the highest fusion version in the store (1 in an empty one)."""
    return max(versions(store.parent, store.name), default=0) + 1


def ship(
    net: FusionNet,
    features: FeatureSpec,
    cfg: NetworkConfig,
    semantics: OutputSemantics,
    out: Path,
    history: list[dict],
    report: Callable[[Path, Calibration], dict],
    calibration_windows: WindowSet,
    *,
    started: float,
    argv: list[str] | None,
    seed: int,
    training_data: str,
    corpus: dict,
    metrics: dict,
    notes: str,
) -> FusionManifest:
    """Export to ONNX (parity-checked), calibrate it on ``calibration_windows``, evaluate the
    export with ``report``, then write the manifest (provenance common to every run plus
    ``corpus`` and ``metrics``, and the calibration), checkpoint, history, report and the
    reliability diagram."""
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    export_onnx(net, features, onnx_path)
    worst = parity(net, onnx_path, features)
    print(f"ONNX parity: max |ORT - torch| = {worst:.2e}", flush=True)
    if worst > PARITY_TOLERANCE:
        sys.exit(f"parity check failed: {worst} > {PARITY_TOLERANCE}")
    torch.save(net.state_dict(), out / "checkpoint.pt")
    calibrated = time.monotonic()
    calibration = calibrate(
        onnx_runner(onnx_path), calibration_windows, features, semantics,
        source=f"{training_data} validation participants ({calibration_windows.totals.size}), each also cut to "
        "10, 20, 30, 60 and 90 s, every modality subset",
    )
    print(f"calibrated on the validation split in {time.monotonic() - calibrated:.0f}s", flush=True)
    evaluation = report(onnx_path, calibration)
    (out / REPORT_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
    first_split = next(iter(evaluation["splits"].values()))
    if reliability_png(first_split["uncertainty"], out / "reliability.png"):
        print(f"wrote {out / 'reliability.png'}", flush=True)
    inputs, outputs = io_specs(features, semantics)
    manifest = FusionManifest(
        version=int(out.name),
        sha256=sha256_file(onnx_path),
        opset=OPSET,
        features=features,
        network=cfg,
        inputs=inputs,
        outputs=outputs,
        semantics=semantics,
        calibration=calibration,
        provenance=Provenance(
            training_data=training_data,
            clinically_validated=False,
            seed=seed,
            trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command="python -m training.train " + shlex.join(argv if argv is not None else sys.argv[1:]),
            wall_time_s=round(time.monotonic() - started, 1),
            corpus=corpus,
            metrics={
                **metrics,
                "epochs_run": len(history),
                "best_val_mae": min(h["val_mae"] for h in history),
                "onnx_parity_max_abs": worst,
                **summarise_report(evaluation),
            },
            notes=notes,
        ),
    )
    manifest.dump(out / "manifest.json")
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    print(f"wrote {out} in {time.monotonic() - started:.0f}s", flush=True)
    return manifest


def network_config(args: argparse.Namespace) -> NetworkConfig:
    """The attention options of the command line (0 turns a figure off)."""
    return NetworkConfig(
        evidence_attention=not args.no_evidence_attention,
        quality_floor=args.quality_floor,
        quality_in_keys=args.quality_in_keys,
        score_bound=args.score_bound or None,
        liveliness_scale=args.liveliness_scale or None,
        steadiness_centre=args.steadiness_centre or None,
        consensus_scale=args.consensus_scale or None,
    )


def train_synthetic(args: argparse.Namespace, argv: list[str] | None) -> None:
    started = time.monotonic()
    features = FeatureSpec(visual=VisualSpec(profile=args.visual_profile or FULL_VISUAL_PROFILE))
    cfg = network_config(args)
    semantics = OutputSemantics()
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
    # epochs are selected on the first --select participants of the validation split (each epoch
    # answers them for four subsets); the others calibrate the exported model: calibrating on the
    # participants that chose the epoch would make its intervals too narrow for everyone else
    n_select = min(args.select, args.val - 1)
    selection = participants(data["val"], 0, n_select)
    calibration_set = participants(data["val"], n_select, args.val)
    net, history = train_model(
        data["train"], selection, features, cfg, semantics, args.seed, args.epochs, budget,
        damage_rate=args.damage_rate, attention_weight=args.attention_weight, damage_penalty=args.damage_penalty,
        pair_weight=args.pair_weight,
    )
    train_s = time.monotonic() - started - corpus_s
    train_mean = float(data["train"].totals.mean())
    out = args.store / str(args.version or next_version(args.store))

    def report(onnx_path: Path, calibration: Calibration) -> dict:
        from training.robustness import held_out_people, robustness

        evaluation = evaluation_report(onnx_path, {"test": data["test"]}, features, semantics, train_mean, calibration)
        if args.robustness_participants:
            people = held_out_people(args.robustness_participants, seed=90210)
            evaluation["robustness"] = robustness(
                onnx_runner(onnx_path), features, semantics, train_mean, people, 90210, args.cache, args.workers
            )
        return evaluation

    ship(
        net,
        features,
        cfg,
        semantics,
        out,
        history,
        report,
        calibration_set,
        started=started,
        argv=argv,
        seed=args.seed,
        training_data="synthetic",
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
        },
        notes=(
            "Trained only on synthetic participants whose features carry planted effects in the "
            "directions the literature reports. Not clinically validated; not for diagnosis."
        ),
    )


def train_on_corpus(args: argparse.Namespace, argv: list[str] | None) -> None:
    """DAIC-WOZ / E-DAIC: train on train, select on dev, report dev and (labelled) test."""
    from training.daic.mapping import landmark_free_profiles
    from training.daic.sessions import CORPUS_EDAIC, CorpusError, detect_corpus, load_corpus

    started = time.monotonic()
    try:
        kind = args.corpus or detect_corpus(args.data)
    except CorpusError as exc:
        sys.exit(str(exc))
    profile = args.visual_profile or (landmark_free_profiles()[0] if kind == CORPUS_EDAIC else FULL_VISUAL_PROFILE)
    features, semantics = FeatureSpec(visual=VisualSpec(profile=profile)), OutputSemantics()
    cfg = network_config(args)
    if profile not in producible_profiles():
        print(
            f"warning: no server extractor produces the visual profile {profile!r}; the server will refuse "
            "to serve this model (research use only)",
            flush=True,
        )
    try:
        corpus = load_corpus(args.data, features, TEXT_ENCODER_DIR, args.cache, kind, args.workers)
    except (CorpusError, DaicFileError) as exc:
        sys.exit(str(exc))
    corpus_s = time.monotonic() - started
    for line in corpus.notes():
        print(line, flush=True)
    data = corpus.window_sets(features)
    for split in ("train", "dev"):
        if split not in data:
            sys.exit(f"{args.data}: no usable {split} session; training needs both train and dev")
    print({name: d.size for name, d in data.items()}, "windows", flush=True)

    budget = args.max_minutes * 60
    net, history = train_model(
        data["train"], data["dev"], features, cfg, semantics, args.seed, args.epochs, budget,
        damage_rate=args.damage_rate, attention_weight=args.attention_weight, damage_penalty=args.damage_penalty,
        pair_weight=args.pair_weight,
    )
    train_s = time.monotonic() - started - corpus_s
    train_mean = float(data["train"].totals.mean())
    out = args.store / str(args.version or next_version(args.store))

    held_out = {name: data[name] for name in ("dev", "test") if name in data}
    name = "DAIC-WOZ" if kind != CORPUS_EDAIC else "E-DAIC"
    ship(
        net,
        features,
        cfg,
        semantics,
        out,
        history,
        lambda onnx_path, calibration: evaluation_report(
            onnx_path, held_out, features, semantics, train_mean, calibration
        ),
        data["dev"],
        started=started,
        argv=argv,
        seed=args.seed,
        training_data=name,
        corpus={
            "name": name,
            "participants": {split: len(corpus.split(split)) for split in ("train", "dev", "test")},
            "participants_with_items": {split: int(d.has_items.sum()) for split, d in data.items()},
            "windows": {split: d.size for split, d in data.items()},
            "skipped": {str(k): v for k, v in sorted(corpus.skipped.items())},
            "label_notes": {str(k): v for k, v in sorted(corpus.label_notes.items())},
            "build_seconds": round(corpus_s, 1),
        },
        metrics={
            "train_mean_total": train_mean,
            "selection": "best mean dev MAE over all modalities and each single one, participant level",
            "train_seconds": round(train_s, 1),
        },
        notes=(
            f"Trained on {name} under its licence (EULA): the model inherits its terms. Features come from "
            "the corpus's tracker files mapped to the serve-time channels (docs/training.md); the mapping's "
            "known mismatches apply. Not clinically validated; not for diagnosis."
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a DAIC-WOZ or E-DAIC corpus root (default: the synthetic corpus)")
    parser.add_argument("--corpus", choices=["daic-woz", "e-daic"], help="corpus kind (default: from the layout)")
    parser.add_argument(
        "--visual-profile",
        choices=list(VISUAL_PROFILES),
        help="visual channels (default: landmarks_v1; gaze_pose_v1 for E-DAIC, which has no landmarks)",
    )
    parser.add_argument("--version", type=int, help="version to write (default: the next free one in the store)")
    parser.add_argument("--store", type=Path, default=Path("model_store/fusion"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train", type=int, default=600, help="synthetic: training participants")
    parser.add_argument(
        "--val", type=int, default=500, help="synthetic: validation participants (selection and calibration)"
    )
    parser.add_argument(
        "--select", type=int, default=100,
        help="synthetic: validation participants that select the epoch (the rest calibrate)",
    )
    parser.add_argument("--test", type=int, default=150, help="synthetic: held-out test participants (report only)")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--max-minutes", type=float, default=9.0, help="stop training after this long")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="feature cache (default: .build/corpus or .build/daic)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--damage-rate", type=float, default=0.3, help="share of windows with one modality damaged (training.damage)"
    )
    parser.add_argument(
        "--damage-penalty", type=float, default=0.5,
        help="loss per unit of weight a damaged modality keeps in its damaged window",
    )
    parser.add_argument(
        "--pair-weight", type=float, default=2.0,
        help="loss on a damaged window's weight for its damaged modality above 0.6 of its clean twin's",
    )
    parser.add_argument(
        "--score-bound", type=float, default=0.75,
        help="bound of the input-dependent attention score (0: unbounded, to version 3)",
    )
    parser.add_argument(
        "--liveliness-scale", type=float, default=0.005,
        help="visual liveliness in the gate: sd / (sd + this) of the window's features (0: off, to version 3)",
    )
    parser.add_argument(
        "--steadiness-centre", type=float, default=0.0,
        help="face steadiness in the gate: sigmoid((this - roughness) / 0.05); 0: off (version 4); version 5: 0.8",
    )
    parser.add_argument(
        "--consensus-scale", type=float, default=0.0,
        help="agreement in the gate: 1 / (1 + (gap to the others' estimate / this) ** 2); 0: off (v4); v5: 4",
    )
    parser.add_argument("--quality-floor", type=float, default=1.0, help="the quality gate's smallest exponent")
    parser.add_argument(
        "--quality-in-keys", action="store_true",
        help="let the learned attention score see the quality figures too (to version 2; it can undo the gate)",
    )
    parser.add_argument(
        "--attention-weight", type=float, default=1.0,
        help="weight of the best-single-modality attention target beside the fused answer's own loss",
    )
    parser.add_argument(
        "--no-evidence-attention", action="store_true",
        help="the version 1-2 attention (quality only, not how much of the window a modality fills)",
    )
    parser.add_argument(
        "--robustness-participants", type=int, default=30,
        help="synthetic: held-out people of the robustness table in the report (0: none)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --version (a rebuild)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.version is not None and (args.store / str(args.version)).exists() and not args.overwrite:
        sys.exit(f"{args.store / str(args.version)} exists; versions are immutable, pick another or omit --version")
    if args.data is not None:
        args.cache = args.cache or Path(".build/daic")
        train_on_corpus(args, argv)
    else:
        args.cache = args.cache or Path(".build/corpus")
        train_synthetic(args, argv)


if __name__ == "__main__":
    main()
