"""Does data loading keep a training step fed? Images/s of the training loader (CamVid, 256x256
crops with the default augmentations) against images/s of a training step, on this machine.

    .venv/bin/python benchmarks/data_loading.py [--data ../shared/datasets/camvid] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.data import DataLoader

from seglab.data.dataset import open_data, pad_collate
from seglab.data.transforms import train_transform
from seglab.models import build_model


def loader_rate(data, workers: int, batch: int, batches: int) -> float:
    dataset = data.split("train", train_transform((256, 256)))
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        collate_fn=pad_collate(data.info.ignore_index),
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    next(it)  # workers started
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def step_rate(encoder: str, num_classes: int, batch: int, repeats: int) -> float:
    model = build_model(encoder, num_classes, encoder_weights=None).train()
    optimizer = torch.optim.AdamW(model.parameters())
    images, masks = torch.rand(batch, 3, 256, 256), torch.randint(0, num_classes, (batch, 256, 256))
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/datasets/camvid")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    data = open_data(args.data, progress=False)
    results = {
        "loader_images_per_s_main_process": loader_rate(data, 0, args.batch, 8),
        f"loader_images_per_s_{args.workers}_workers": loader_rate(
            data, args.workers, args.batch, 16
        ),
    }
    for encoder in ("mobilenet_v2", "vgg19"):
        results[f"train_step_images_per_s_{encoder}"] = step_rate(
            encoder, data.info.num_classes, args.batch, 3
        )
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:8.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
