"""ingest executor: a Beam pipeline that reads, checks, splits and writes every image.

Workers check files (or TFRecord records) in tasks of ``beam.files_per_task`` (``check.py``;
at most ``MAX_TASKS`` tasks of files, reading the listing a page at a time).
The content hashes then meet in one split plan (``split.py``), and the workers write every
image as a tf.train.Example to ``<split>/data-*.tfrecord`` (``write.py``). Unusable items go
to ``quarantine.jsonl`` with the reason: found = ingested + quarantined, always, and the run
prints all three.

Outputs besides the records: ``classes.json``, ``split_index.npz`` (content hash -> split,
read by the next ingest so old images keep their split; ``keys.Index``; the workers read the
previous one from a copy in the scratch folder, ``keys.StoredIndex``), ``plan.json``
(where each split's images came from, duplicates, leakage, label conflicts) and
``split_stats.json`` (per-split statistics measured while the images were decoded anyway;
validate turns them into protos, schema and anomalies).

On the DirectRunner, ``beam.direct_running_mode: auto`` starts worker processes only for
work that repays their start-up (about a second); smaller sources run in this process.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import threading
import uuid
import zlib

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import ReadAllFromTFRecord
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from visionpipe.components.ingest import check, curation, sources, write
from visionpipe.components.ingest.keys import Index, StoredIndex
from visionpipe.components.ingest.spec import Inputs, Outputs, Params
from visionpipe.components.ingest.split import SPLITS, describe_splits
from visionpipe.data import label_sets
from visionpipe.pipeline.artifacts import UNUSABLE, Examples
from visionpipe.pipeline.errors import DataError
from visionpipe.pipeline.stage import StageContext

# What one process checks per second, to decide whether worker processes pay for their
# start-up: a fixed cost per file (open, parse, hash, serialize) plus decoding, which grows
# with the compressed size (measured on the shared CIFAR-10 and Caltech-101 JPEGs). A worker
# process costs about 1.5 s before its first file (Python, Beam and our modules imported).
# Measured with benchmarks/ingest_throughput.py: 50,000 CIFAR-10 JPEGs (an estimated 3.3 s of
# work) ingest at 0.54x the plain loop with two workers and 0.49x in this process; 10,000 at
# 0.28x in this process.
SECONDS_PER_FILE = 50e-6
BYTES_PER_SECOND = 80e6
WORKER_STARTUP_SECONDS = 1.5


def _stored_previous_index(inputs: Inputs, scratch: str) -> StoredIndex:
    """The previous ingest's split index, copied where the workers read it (remote workers
    cannot read the run root), so it is not pickled into the pipeline graph and the plan."""
    path = FileSystems.join(scratch, "previous_index.npz")
    return (
        StoredIndex.save(Index.empty(), path)
        if inputs.previous is None
        else StoredIndex.copy(inputs.previous.path, path)
    )


def _pixel_fraction(listing: sources.Listing, sample: int) -> float:
    # Record sources are not counted before the pipeline runs: they measure every image.
    if not sample or not listing.entries or listing.records:
        return 1.0
    return min(1.0, sample / len(listing.entries))


# Why tasks mix classes: examples are written in the order tasks are done, and sources come
# in class order (class folders, often manifests and TFRecords too). Tasks of one class each
# would write class-sorted TFRecord shards, and training's bounded shuffle buffer would then
# see only a few classes at a time. So files are taken in the order of a hash of their path,
# and records are dealt into buckets (a task each) by a hash of their bytes: fixed, and well
# spread. (GroupIntoBatches would make the tasks directly, but its state makes the DirectRunner
# fall back to its old single-process engine.)
#
# The most tasks a source is cut into; more items make larger tasks (files: at least
# ``beam.files_per_task`` each). The runner's memory grows with the number of tasks, not their
# size, by about 15 KB a task (measured on a million files: the driver grew 65 MB over the run
# in 4,000 tasks of 250, 22 MB in 1,000 of 1,000), which made ingest's peak memory grow with the
# data. 1,024 tasks still keep a hundred workers busy; at ImageNet size a task is ~1,250 images.
MAX_TASKS = 1024


def build_pipeline(
    pipeline: beam.Pipeline,
    listing: sources.Listing,
    params: Params,
    previous_index: StoredIndex,
    out: str,
    scratch: str,
) -> None:
    data = params.data
    fraction = _pixel_fraction(listing, data.pixel_stats_sample)
    check_args = (data.max_pixels, params.channels, fraction, scratch, params.curation)
    tasks = []
    if listing.entries:
        files_per_task = max(params.files_per_task, -(-len(listing.entries) // MAX_TASKS))
        pages = check.write_listing(listing.entries.spread(), scratch, files_per_task)
        tasks.append(
            pipeline
            | "ListFiles" >> beam.Create(pages, reshuffle=True)
            | "CheckFiles" >> beam.ParDo(check.CheckFiles(*check_args)).with_output_types(check.TaskResult)
        )
    if listing.records:
        tasks.append(
            pipeline
            | "ListRecordFiles" >> beam.Create([f for f, _ in listing.records.files])
            | "ReadRecords" >> ReadAllFromTFRecord(with_filename=True)
            | "SpreadRecords" >> beam.Map(lambda item: (zlib.crc32(item[1]) % MAX_TASKS, item))
            | "DealRecords" >> beam.GroupByKey()
            | "Tasks" >> beam.MapTuple(lambda _, dealt: list(dealt))
            | "CheckRecords"
            >> beam.ParDo(check.CheckRecords(listing.records, *check_args)).with_output_types(check.TaskResult)
        )
    checked = tasks | "AllTasks" >> beam.Flatten()
    plan = (
        checked
        # One element per task, its spill's name: per-image elements would each pay Beam's
        # element cost, and the images' keys would sit in the runner's buffers.
        | "Spills" >> beam.Map(lambda task: task.spill)
        | "AllSpills" >> beam.combiners.ToList()
        | "Plan" >> beam.Map(check.plan_of, data.split, previous_index, listing.task)
    )
    rejected = [(item, reason, UNUSABLE) for item, reason in listing.rejected]
    (
        checked
        | "WriteSplits" >> beam.ParDo(write.WriteSplits(out), plan=beam.pvalue.AsSingleton(plan))
        | "AllBundles" >> beam.combiners.ToList()
        | "Finish" >> beam.Map(write.finish, out, plan=beam.pvalue.AsSingleton(plan), rejected=rejected)
    )


def choose_mode(beam_args: list[str], listing: sources.Listing) -> list[str]:
    """DirectRunner options with a running mode: worker processes when the estimated work of
    one process (see the constants above) is worth more than their start-up."""
    if "--runner=DirectRunner" not in beam_args or any(a.startswith("--direct_running_mode") for a in beam_args):
        return beam_args
    items = len(listing.entries) + (len(listing.records.files) * 1000 if listing.records else 0)
    work = items * SECONDS_PER_FILE + listing.total_bytes / BYTES_PER_SECOND
    workers = next((int(a.split("=")[1]) for a in beam_args if a.startswith("--direct_num_workers=")), 1)
    if workers > 1 and work * (1 - 1 / workers) > WORKER_STARTUP_SECONDS:
        return [*beam_args, "--direct_running_mode=multi_processing"]
    return [a for a in beam_args if not a.startswith("--direct_num_workers=")] + [
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    ]


def run(inputs: Inputs, outputs: Outputs, params: Params, ctx: StageContext) -> dict:
    _check_fractions(params.data.split)
    listing = ctx.external or sources.list_source(params.data, ctx.run_root / "datasets")
    if listing.task == label_sets.MULTI_LABEL and params.curation:
        params = dataclasses.replace(params, curation=params.curation.with_label_sets(params.data.labels.delimiter))
    out = outputs.examples.path
    beam_args = choose_mode(ctx.beam_args, listing)
    scratch = _scratch(beam_args, ctx)
    previous_index = _stored_previous_index(inputs, scratch)
    ctx.log(
        f"{listing.description}: {len(listing.entries)} candidate files, {len(listing.rejected)} rejected"
        + (f", {len(listing.records.files)} TFRecord files" if listing.records else "")
        + (f"; {previous_index.size} images keep their split from the previous ingest" if previous_index.size else "")
        + (f"; {len(params.curation.decisions)} images named by data.exclude/data.relabel" if params.curation else "")
        + f"; Beam {' '.join(beam_args)}"
    )
    _run_beam(listing, params, previous_index, out, beam_args, scratch, ctx)
    pipeline_counts = json.loads((out / Examples.COUNTS).read_text())
    counts = {split: pipeline_counts["written"][split] for split in SPLITS}
    found = len(listing.entries) + len(listing.rejected) + pipeline_counts["records_found"]
    quarantine = [json.loads(line) for line in (out / Examples.QUARANTINE).open() if line.strip()]
    curated = [json.loads(line) for line in (out / Examples.CURATION).open() if line.strip()]
    plan = json.loads((out / Examples.PLAN).read_text())
    splits = describe_splits(plan)
    _write_classes(out, plan, listing, splits)
    summary = _summary(plan, counts, splits, found, len(quarantine), curated)
    if listing.task == label_sets.MULTI_LABEL:
        summary["notes"].insert(0, f"multi-label: {len(plan['classes'])} labels ({listing.task_reason})")
    outputs.examples.properties.update(
        summary, classes=plan["classes"], split_origins=plan["origins"], task=listing.task
    )
    for note in summary["notes"]:
        ctx.log(note)
    _check_outcome(out, counts, found, len(quarantine), summary["excluded"])
    _check_curation(params.curation, curated, quarantine, _class_totals(out))
    return summary


def _check_fractions(split) -> None:
    fractions = (split.train, split.val, split.test)
    if any(v < 0 for v in fractions) or fractions[0] <= 0:
        raise DataError(f"data.split fractions must be >= 0 with train > 0; got {split}")


def _scratch(beam_args: list[str], ctx: StageContext) -> str:
    """A new folder the workers share: the listing, the previous index and the spills."""
    # Workers on other machines cannot see our scratch folder: with a remote runner it goes
    # under the runner's --temp_location (e.g. gs://bucket/tmp).
    temp_location = PipelineOptions(beam_args).view_as(GoogleCloudOptions).temp_location
    scratch = FileSystems.join(temp_location or str(ctx.scratch_dir), f"visionpipe-ingest-{uuid.uuid4().hex}")
    FileSystems.mkdirs(scratch)
    return scratch


def _run_beam(
    listing: sources.Listing,
    params: Params,
    previous_index: StoredIndex,
    out,
    beam_args: list[str],
    scratch: str,
    ctx: StageContext,
) -> None:
    """Runs the Beam pipeline that writes the Examples into ``out``."""
    options = PipelineOptions(beam_args)
    pipeline = beam.Pipeline(runner=_runner(options), options=options)
    build_pipeline(pipeline, listing, params, previous_index, str(out), scratch)
    _run_with_progress(pipeline, ctx, scratch, len(listing.entries) or None)
    StoredIndex.release()  # this process's copy, when the pipeline ran in it
    FileSystems.delete([scratch])


def _runner(options: PipelineOptions):
    """The runner object for ``--runner`` (None: Beam makes it from the options). DirectRunner is
    Beam's FnApiRunner, as DirectRunner itself makes it: since Beam 2.6x DirectRunner first
    downloads the Prism runner binary from GitHub and runs the pipeline there (ignoring
    direct_running_mode), which is a network call at run time, a leaked /tmp/beam-temp* folder
    per run offline, and another engine online."""
    if options.view_as(StandardOptions).runner != "DirectRunner":
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(provision))


def _write_classes(out, plan: dict, listing: sources.Listing, splits: dict) -> None:
    (out / Examples.CLASSES).write_text(
        json.dumps(
            {
                "classes": plan["classes"],
                "empty_classes": listing.empty_classes,
                "source": listing.description,
                "pre_split": listing.pre_split,
                "task": listing.task,
                "splits": splits,
            },
            indent=2,
        )
    )


def _summary(
    plan: dict, counts: dict[str, int], splits: dict, found: int, quarantined: int, curated: list[dict]
) -> dict:
    ingested = sum(counts.values())
    by_action = {action: [c for c in curated if c["action"] == action] for action in (curation.DROP, curation.RELABEL)}
    excluded = len(by_action[curation.DROP])
    notes = [
        f"found {found:,} = ingested {ingested:,} + quarantined {quarantined:,}"
        + (f" + excluded {excluded:,} (data.exclude)" if excluded else ""),
        "splits: " + "; ".join(f"{s} {counts[s]:,} {splits[s]}" for s in SPLITS),
    ]
    why = {action: dict(collections.Counter(c["kind"] for c in items)) for action, items in by_action.items()}
    if curated:
        notes.append(
            f"curation: {excluded:,} images left out ({_kinds(why[curation.DROP])}), "
            f"{len(by_action[curation.RELABEL]):,} relabelled ({_kinds(why[curation.RELABEL])}); "
            f"each with its reason in {Examples.CURATION}; your files are unchanged"
        )
    return {
        "found": found,
        "ingested": ingested,
        "quarantined": quarantined,
        "excluded": excluded,
        "relabelled": len(by_action[curation.RELABEL]),
        "curation_reasons": why,
        "classes": len(plan["classes"]),
        **{f"{s}_images": n for s, n in counts.items()},
        "duplicate_groups": len(plan["duplicates_in_split"]),
        "leaked_copies": len(plan["leakage"]),
        "notes": notes,
    }


def _class_totals(out) -> dict[str, int]:
    """Images ingested per class, all splits together."""
    totals: collections.Counter[str] = collections.Counter()
    for split in json.loads((out / Examples.SPLIT_STATS).read_text()).values():
        totals.update(split.get("classes", {}))
    return dict(totals)


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items())) or "none"


def _check_curation(
    decisions: curation.Curation, curated: list[dict], quarantine: list[dict], class_totals: dict[str, int]
) -> None:
    """Fails the stage when a curation row named no image of the data, or relabelled an image to
    a label no other image carries (a typo would otherwise make a one-image class)."""
    seen = {curation.source_key(item["source"]) for item in curated}
    seen |= {curation.source_key(item["path"]) for item in quarantine}
    missing = [d.origin for key, d in decisions.decisions.items() if key not in seen]
    if missing:
        raise DataError(
            f"{len(missing)} curation rows name no image of the data ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); fix their paths (relative ones start at the data's "
            "folder) or remove the rows"
        )
    relabelled = [c for c in curated if c["action"] == curation.RELABEL]
    # Per label: a multi-label image's new label set counts towards each of its labels.
    into = collections.Counter(name for c in relabelled for name in _labels_of(c["new_label"], class_totals))
    alone = [label for label, n in into.items() if class_totals.get(label, 0) <= n]
    if alone:
        origins = [c["origin"] for c in relabelled if set(_labels_of(c["new_label"], class_totals)) & set(alone)]
        raise DataError(
            f"curation relabels images to {alone[0]!r} ({', '.join(origins[:3])}), a label no other image carries; "
            f"the classes are {', '.join(sorted(class_totals))}: fix the label or give the class its images"
        )


def _labels_of(new_label: str, class_totals: dict[str, int]) -> tuple[str, ...]:
    """The classes a relabel names: one, or each label of a multi-label set (as ingest spells it)."""
    if new_label in class_totals or label_sets.SEPARATOR not in new_label:
        return (new_label,)
    return label_sets.decode(new_label)


def _check_outcome(out, counts: dict[str, int], found: int, quarantined: int, excluded: int) -> None:
    """Fails the stage (after its summary is recorded and logged) when items went missing, when
    nothing was usable, or when no split is left to evaluate on."""
    ingested = sum(counts.values())
    if ingested + quarantined + excluded != found:
        raise RuntimeError(
            f"ingest lost items: found {found}, ingested {ingested}, quarantined {quarantined}, excluded {excluded}"
        )
    if not ingested and quarantined:
        with (out / Examples.QUARANTINE).open() as f:
            first = json.loads(f.readline())
        raise DataError(
            f"none of the {found:,} images can be used: all were quarantined ({out / 'quarantine.jsonl'}); the "
            f"first: {first['path']}: {first['reason']}"
        )
    if not counts["val"] and not counts["test"]:
        raise DataError(
            "the val and test splits are both empty, so no model could be evaluated; give a val or test "
            "split, or set data.split.test (or data.split.val) above 0"
        )


def _run_with_progress(pipeline: beam.Pipeline, ctx: StageContext, scratch: str, total: int | None) -> None:
    """Runs the pipeline in a thread while this one reports how many items the workers have checked."""
    outcome: dict = {}

    def execute():
        try:
            outcome["result"] = pipeline.run()
            outcome["result"].wait_until_finish()
        except BaseException as err:  # re-raised in the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=execute, name="beam-ingest", daemon=True)
    with ctx.progress("checking", total, "files" if total else "items") as progress:
        worker.start()
        while worker.is_alive():
            worker.join(timeout=0.5)
            if FileSystems.get_scheme(scratch) is None:  # counting remote files would cost requests
                progress.update(check.spilled_items(_names(scratch)))
    if "error" in outcome:
        raise outcome["error"]


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []
