"""Open napari with a labelassist sample and the plugin's three widgets docked.

Everything is offline::

    python examples/napari_demo.py                  # real nuclei sample + its outlines
    python examples/napari_demo.py --preannotate    # ... and the starter model's proposals
    python examples/napari_demo.py --project demo   # a project of synthetic images to review

With ``--project`` a labeling project of synthetic nuclei images is created in the folder
(once) and opened in the Review widget: correct the polygons, press Shift-Enter to accept
an image and go to the next one, export COCO, train a round. Its images are
pre-annotated with the shipped starter model; when this build has no starter model, the
generator's true outlines with random scores stand in for the proposals.

``--screenshot PATH`` saves a picture of the window and quits (used for the docs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def make_project(folder: Path, *, n_images: int = 4, seed: int = 0):
    """Create (once) a project of synthetic nuclei images, pre-annotated."""
    import imageio.v3 as iio

    import labelassist as la
    from labelassist.project import DB_NAME

    if (folder / DB_NAME).is_file():
        return la.Project.open(folder)
    project = la.Project.create(folder, classes=["nucleus", "debris"], copy_images=True)
    staging = folder / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    truths = {}
    for k in range(n_images):
        image, truth = la.synthetic_nuclei((256, 256), dtype=np.uint16, seed=seed + k)
        path = staging / f"nuclei_{k:02d}.tif"
        iio.imwrite(path, image)
        [image_id] = project.add_images(path)
        truths[image_id] = truth
    try:
        model = la.load_model("starter")
    except FileNotFoundError:
        model = None
        print("no starter model in this build: true outlines with random scores stand in")
    rng = np.random.default_rng(seed)
    for image_id, truth in truths.items():
        if model is not None:
            proposals = model.predict(la.read_image(project.image_path(image_id)))
        else:
            proposals = truth.replace(scores=rng.uniform(0.3, 1.0, len(truth)))
        project.save_instances(image_id, proposals, source="model", model_id="demo")
    return project


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="project folder (created when missing)")
    parser.add_argument(
        "--preannotate", action="store_true", help="pre-annotate the sample with the starter model"
    )
    parser.add_argument("--screenshot", type=Path, help="save a screenshot here and quit")
    args = parser.parse_args(argv)

    if args.project is not None:  # before the viewer: it may load the starter model (torch)
        make_project(args.project.resolve()).close()

    import napari

    viewer = napari.Viewer(title="labelassist demo")
    _, pre = viewer.window.add_plugin_dock_widget("labelassist", "Pre-annotate")
    _, review = viewer.window.add_plugin_dock_widget("labelassist", "Review")
    _, train = viewer.window.add_plugin_dock_widget("labelassist", "Train rounds")
    if args.project is not None:
        review.open_project(args.project.resolve())
        train.folder.value = args.project.resolve()
    else:
        viewer.open_sample("labelassist", "real_nuclei")
    if args.preannotate:
        for layer in viewer.layers:
            if layer._type_string == "shapes":
                layer.visible = False  # compare with the ground truth by toggling it
        pre.image.value = next(layer for layer in viewer.layers if layer._type_string == "image")
        pre.run()
    if args.screenshot is not None:
        import time

        from qtpy.QtWidgets import QApplication

        while pre.busy:  # let the pre-annotation finish before taking the picture
            QApplication.processEvents()
            time.sleep(0.05)

        viewer.window._qt_window.resize(1400, 900)
        QApplication.processEvents()
        viewer.screenshot(str(args.screenshot), canvas_only=False, flash=False)
        viewer.close()
        return
    napari.run()


if __name__ == "__main__":
    main()
