"""Pre-annotate a real nuclei image with the shipped starter model, offline.

Run:  python examples/quickstart.py [OUT_FOLDER]

Writes the polygons as COCO json, an overlay picture, and prints the model's mask AP
against the image's hand-made labels.
"""

import sys
from pathlib import Path

import imageio.v3 as iio

import labelassist as la
from labelassist.evaluation import evaluate_predictions
from labelassist.samples import real_nuclei
from labelassist.visualize import draw_outlines

out = Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart_out")
out.mkdir(exist_ok=True)

image, label_image = real_nuclei(labels=True)  # 16-bit fluorescence, 125 nuclei
model = la.load_model("starter")  # shipped inside the package: no download
instances = model.predict(image, score_threshold=0.5)
print(f"{len(instances)} nuclei found on {model.device}")
print(f"first box (x0, y0, x1, y1): {instances.boxes[:1]}")

# The same image as a one-image COCO dataset: predictions and ground truth.
record = {"id": 1, "file_name": "real_nuclei.tif", "height": 512, "width": 512}
predicted = la.Dataset(model.classes, [record], {1: instances})
predicted.to_coco(out / "predictions.json")
truth = la.Dataset.from_label_images(
    [label_image], file_names=["real_nuclei.tif"], categories=model.classes
)

# AP is measured over all scores (as COCO does), so predict again with a low threshold
ranked = model.predict(image, score_threshold=0.05)
metrics = evaluate_predictions({truth.images[0]["id"]: ranked}, truth)
ap50, ap = metrics["segm_AP50"], metrics["segm_AP"]
print(f"mask AP50 {ap50:.3f}, mask AP {ap:.3f} against the hand-made labels")

iio.imwrite(out / "overlay.png", draw_outlines(image, instances))
print(f"wrote {out / 'predictions.json'} and {out / 'overlay.png'}")
