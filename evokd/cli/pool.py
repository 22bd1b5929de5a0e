"""`evokd pool`: unlabeled pools embedded once for many runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evokd.cli.common import friendly_errors


@click.group("pool")
def pool_group():
    """Unlabeled pools: embed once, use in many runs (`evokd generate --pool DIR`).

    \b
    Example:
      evokd pool embed "$EVOKD_DATA/banking77/train.jsonl" --out pools/banking77
    """


@pool_group.command("embed")
@click.argument("pool_file", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the Parquet shards and pool.json.")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="local: this process, every core; ray: Ray Data actors (one ONNX encoder each) on a cluster.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray instance).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 100_000), help="Texts per encoder call (each call runs in batches of at most 512 padded tokens).")
@click.option("--shard-rows", default=50_000, show_default=True, type=click.IntRange(100),
              help="Rows per Parquet shard (local) or per input block (ray).")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="onnxruntime threads [local: every core; ray: 1 per actor].")
@click.option("--actors", default=None, type=click.IntRange(1, 10_000), help="Ray: encoder actors [one per cluster CPU].")
@click.option("--quiet", is_flag=True, help="Print only the manifest JSON.")
@friendly_errors
def pool_embed(pool_file, out, executor, address, batch_size, shard_rows, threads, actors, quiet):
    """Embed an unlabeled corpus with the ONNX MiniLM encoder into Parquet shards.

    Each shard row is (pool_id, text, label, text_hash, vector); DuckDB reads them directly, and
    `evokd generate --pool DIR` loads them without embedding again. Every input row is checked
    (one-line error naming file, line and field) and kept; a text over 20,000 characters is cut at
    a word boundary, and pool.json's "data" counts the cuts and the repeated texts. pool.json is
    written last: a folder without it is an interrupted embedding, which re-running the command replaces.

    \b
    Example:
      evokd pool embed my_unlabeled_reviews.jsonl.gz --out pools/reviews
      evokd pool embed "$EVOKD_DATA/sst2/train.jsonl" --out pools/sst2 --executor ray --address auto
      evokd generate datasets/sst2/task.yaml --pool pools/sst2 --oracle --rounds 1 --per-round 8
    """
    from evokd.pool import embed_pool
    from evokd.progress import RowProgress

    with RowProgress(quiet=quiet) as progress:
        manifest = embed_pool(pool_file, out, executor=executor, address=address, batch_size=batch_size,
                              shard_rows=shard_rows, threads=threads, actors=actors, progress=progress)
    if quiet:
        click.echo(json.dumps(manifest))
    else:
        click.echo(f"read {manifest['data']['description']}")
        click.echo(f"{manifest['rows']:,} rows embedded in {manifest['seconds']:.1f} s "
                   f"({manifest['rows'] / max(manifest['seconds'], 1e-9):,.0f} texts/s, {executor}); wrote {out}")
