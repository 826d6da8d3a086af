"""``labelassist project``: create, fill, inspect, check, export and import a labeling project."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..project import Project

_EPILOG = """\
examples:
  labelassist project init myproj --classes nucleus,debris
  labelassist project init worms --classes worm --keypoints head,tail --skeleton 0-1
  labelassist project add myproj images/ 'more/**/*.tif'
  labelassist project status myproj
  labelassist project status --effort myproj
  labelassist project next myproj
  labelassist project export myproj labels.json --status reviewed --split train
  labelassist project import myproj old_labels.json --image-root old_images/
  labelassist project check myproj
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "project",
        help="create and manage a labeling project (images, labels, rounds)",
        description="A labeling project is a folder with a SQLite database (images, their "
        "instances with edit history, training rounds), checkpoints and optionally copies "
        "of the images. COCO is the exchange format in and out.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)
    sub = parser.add_subparsers(dest="project_command", metavar="ACTION", required=True)

    p = sub.add_parser("init", help="create a project", description="Create a project folder.")
    p.add_argument("folder", type=Path, help="project folder (created when missing)")
    p.add_argument(
        "--classes", required=True, help="comma-separated class names, e.g. nucleus,debris"
    )
    p.add_argument(
        "--copy-images",
        action="store_true",
        help="copy added images into the project (default: refer to them where they are)",
    )
    p.add_argument(
        "--keypoints",
        help="comma-separated keypoint (landmark) names of every object, e.g. head,tail; "
        "rounds then train a keypoint head too",
    )
    p.add_argument(
        "--skeleton",
        help="edges between keypoints as 0-based index pairs, e.g. 0-1 or 0-1,1-2 "
        "(needs --keypoints)",
    )
    p.set_defaults(action=run_init)

    p = sub.add_parser("add", help="add images", description="Add image files to a project.")
    p.add_argument("folder", type=Path, help="project folder")
    p.add_argument(
        "images", nargs="+", help="image files, folders or glob patterns ('**' recurses)"
    )
    copy = p.add_mutually_exclusive_group()
    copy.add_argument(
        "--copy",
        dest="copy",
        action="store_true",
        default=None,
        help="copy the files into the project",
    )
    copy.add_argument(
        "--no-copy", dest="copy", action="store_false", help="refer to the files where they are"
    )
    p.add_argument(
        "--split", choices=["train", "val"], default=None, help="split of the added images"
    )
    p.set_defaults(action=run_add)

    p = sub.add_parser(
        "status",
        help="show counts and rounds",
        description="Counts per status, class, source; rounds; with --effort, the effort "
        "log per round (actions and active seconds; see Project.effort).",
    )
    p.add_argument("folder", type=Path, help="project folder")
    p.add_argument(
        "--effort",
        action="store_true",
        help="also print the effort per round: images accepted, actions, active seconds",
    )
    p.set_defaults(action=run_status)

    p = sub.add_parser(
        "export", help="export COCO", description="Write images and labels as COCO json."
    )
    p.add_argument("folder", type=Path, help="project folder")
    p.add_argument("out", type=Path, help="the COCO .json file to write")
    p.add_argument(
        "--status",
        default="reviewed",
        choices=["reviewed", "all", "new", "pre-annotated", "in-review", "skipped"],
        help="which images (default: reviewed)",
    )
    p.add_argument(
        "--split", choices=["train", "val", "unassigned"], default=None, help="only this split"
    )
    p.add_argument("--rle", action="store_true", help="write every mask as RLE instead of polygons")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes converting to COCO (default: up to 4 from 50,000 instances, else 1)",
    )
    p.set_defaults(action=run_export)

    p = sub.add_parser(
        "import",
        help="import COCO",
        description="Import a COCO json as reviewed, human-made labels.",
    )
    p.add_argument("folder", type=Path, help="project folder")
    p.add_argument("coco", type=Path, help="the COCO .json file")
    p.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="folder of the images (default: the json's folder)",
    )
    p.set_defaults(action=run_import)

    p = sub.add_parser(
        "next", help="the image to label next", description="Print the image to label next."
    )
    p.add_argument("folder", type=Path, help="project folder")
    p.add_argument("--strategy", choices=["uncertainty", "order"], default="uncertainty")
    p.set_defaults(action=run_next)

    p = sub.add_parser(
        "check",
        help="check a project for damage",
        description="Check the database (SQLite integrity, schema version, counters) and "
        "that every image file is present; list the problems and exit 1 when there are "
        "any. Works on a project too damaged to open; never writes.",
    )
    p.add_argument("folder", type=Path, help="project folder")
    p.set_defaults(action=run_check)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (``init``, ``add``, ...); return the exit code."""
    return args.action(args)


def _open(folder: Path) -> Project:
    from ..project import Project  # heavy: numpy, shapely (keeps `labelassist --help` fast)

    return Project.open(folder)


def run_init(args: argparse.Namespace) -> int:
    from ..project import Project  # heavy: see _open

    classes = [name.strip() for name in args.classes.split(",") if name.strip()]
    keypoints = None
    if args.keypoints is not None:
        keypoints = [name.strip() for name in args.keypoints.split(",") if name.strip()]
    skeleton = parse_skeleton(args.skeleton, keypoints)
    with Project.create(
        args.folder,
        classes=classes,
        copy_images=args.copy_images,
        keypoints=keypoints,
        skeleton=skeleton,
    ) as project:
        print(f"created project {project.folder} with classes {', '.join(project.classes)}")
        if keypoints is not None:
            edges = ", ".join(f"{keypoints[a]}-{keypoints[b]}" for a, b in skeleton or [])
            print(f"keypoints {', '.join(keypoints)}" + (f"; skeleton {edges}" if edges else ""))
    return 0


def parse_skeleton(text: str | None, keypoints: list[str] | None) -> list[tuple[int, int]] | None:
    """``--skeleton`` as 0-based ``(a, b)`` pairs: ``"0-1,1-2"`` gives ``[(0, 1), (1, 2)]``.

    Examples
    --------
    >>> parse_skeleton("0-1, 1-2", ["head", "middle", "tail"])
    [(0, 1), (1, 2)]
    >>> parse_skeleton("0-1", None)
    Traceback (most recent call last):
    ...
    ValueError: --skeleton needs --keypoints (the names its indices refer to)
    """
    if text is None:
        return None
    if keypoints is None:
        raise ValueError("--skeleton needs --keypoints (the names its indices refer to)")
    edges = []
    for part in (p.strip() for p in text.split(",")):
        a, sep, b = part.partition("-")
        if not (sep and a.strip().isdigit() and b.strip().isdigit()):
            raise ValueError(
                f"--skeleton edge {part!r} must be two 0-based keypoint indices like 0-1"
            )
        edges.append((int(a), int(b)))
    return edges


def run_add(args: argparse.Namespace) -> int:
    """Add images; exit 1 when some files were refused (listed on stderr, one per line)."""
    from ..project import UnreadableImagesWarning  # heavy: see _open

    with _open(args.folder) as project, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        ids = project.add_images(args.images, copy=args.copy, split=args.split, progress=True)
        total = project.stats()["images"]
    refused = []
    for warning in caught:
        if isinstance(warning.message, UnreadableImagesWarning):
            refused.extend(warning.message.refused)
        else:
            print(f"labelassist project add: {warning.message}", file=sys.stderr)
    print(f"added {len(ids)} images; the project has {total}")
    if refused:
        for _, reason in refused:
            print(f"labelassist project add: refused {reason}", file=sys.stderr)
        print(
            f"labelassist project add: error: {len(refused)} file(s) cannot be read as images "
            "and were not added (listed above)",
            file=sys.stderr,
        )
        return 1
    return 0


def _table(rows: list[tuple], header: tuple) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    with _open(args.folder) as project:
        stats = project.stats()
        rounds = project.rounds()
        read_only = project.read_only
        effort = project.effort(by="round") if args.effort else None
    mode = " (read-only)" if read_only else ""
    print(f"project {args.folder}{mode}: {stats['images']} images, {stats['instances']} instances")
    print()
    print(_table(list(stats["status"].items()), ("status", "images")))
    print()
    print(_table(list(stats["classes"].items()), ("class", "instances")))
    print()
    print(_table(list(stats["source"].items()), ("source", "instances")))
    print()
    if rounds:
        rows = [
            (
                r["round"],
                r["parent"] if r["parent"] is not None else "-",
                r["n_images"],
                r["n_instances"],
                _fmt(r["metrics"].get("segm_AP")),
                _fmt(r["metrics"].get("bbox_AP")),
                r["checkpoint"].name,
            )
            for r in rounds
        ]
        header = ("round", "parent", "images", "instances", "segm_AP", "bbox_AP", "checkpoint")
        print(_table(rows, header))
    else:
        print("no training rounds yet")
    if effort is not None:
        print()
        print(_effort_table(effort))
    return 0


#: The effort table's action columns (``reviewed`` is the ``images`` column's source).
_EFFORT_ACTIONS = ("accepted", "deleted", "drawn", "prompted", "edited", "relabelled", "refined")


def _effort_table(effort: dict) -> str:
    """The per-round table of `Project.effort` (``by="round"``) and its total."""

    def row(name: object, entry: dict) -> tuple:
        counts = [entry["actions"][a] for a in _EFFORT_ACTIONS]
        per = entry["seconds_per_image"]
        return (name, entry["images"], *counts, f"{entry['seconds']:.1f}", _fmt_s(per))

    rows = [row(r["round"], r) for r in effort["rows"]] + [row("total", effort["total"])]
    header = ("round", "images", *_EFFORT_ACTIONS, "active_s", "s_per_image")
    note = (
        "effort per round (images: accepted in the round; active_s: active seconds; "
        "round k+1: work on round k's proposals)"
    )
    return note + "\n" + _table(rows, header)


def _fmt_s(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def run_export(args: argparse.Namespace) -> int:
    with _open(args.folder) as project:
        out = project.export_coco(
            args.out,
            status=args.status,
            split=args.split,
            segmentation="rle" if args.rle else "polygon",
            progress=True,
            workers=args.workers,
        )
        n = len(project.images(status=args.status, split=args.split))
    print(f"wrote {n} images to {out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    with _open(args.folder) as project:
        ids = project.import_coco(args.coco, image_root=args.image_root, progress=True)
    print(f"imported {len(ids)} images as reviewed")
    return 0


def run_next(args: argparse.Namespace) -> int:
    with _open(args.folder) as project:
        record = project.next_image(strategy=args.strategy)
    if record is None:
        print("nothing left to label: every image is reviewed or skipped")
        return 0
    print(f"{record['id']}\t{record['status']}\t{record['path']}")
    return 0


#: at most this many problems are printed by ``check`` (the count is always given)
_MAX_PROBLEMS_SHOWN = 50


def run_check(args: argparse.Namespace) -> int:
    """Print the project's problems; exit 1 when there are any."""
    from ..project import check_folder  # heavy: see _open

    problems = check_folder(args.folder)
    if not problems:
        print(f"project {args.folder}: no problems found")
        return 0
    for line in problems[:_MAX_PROBLEMS_SHOWN]:
        print(line)
    if len(problems) > _MAX_PROBLEMS_SHOWN:
        print(f"... and {len(problems) - _MAX_PROBLEMS_SHOWN} more")
    print(
        f"labelassist project check: {len(problems)} problem(s) found in {args.folder}",
        file=sys.stderr,
    )
    return 1
