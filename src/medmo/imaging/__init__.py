"""Open medical images as RGB PIL images: PNG/JPEG/TIFF (8/16 bit), DICOM, NIfTI.

    from medmo.imaging import open_image, deidentify, fit_pixels
    im = open_image("ct.dcm", window="lung")                 # CT lung window, RGB PIL
    im = open_image("brain.nii.gz", plane="coronal")          # middle coronal slice
    im = open_image("brain.nii.gz", montage=9)                # 3x3 grid of axial slices
    im = open_image("ct_series/", slice_index=40)             # one slice of a DICOM series folder
    im = fit_pixels(im, 768 * 768)                            # stage-1 resolution budget
    im = open_image(upload, budget=Budget(Limits()))          # untrusted: sizes checked on headers first

- `core.py`    format sniffing (path, bytes or file object) and dispatch to a decoder,
               8/16-bit rasters, resolution budgets.
- `pixels.py`  what the decoders share: CT window presets, `parse_window` (the one window
               parser), windowing to 8 bits; it imports no decoder, so none imports back.
- `limits.py`  per-request budgets (pixels per image and per request, volume voxels,
               inflated bytes) checked before any large allocation; `OverBudget`.
- `dicom.py`   rescale slope/intercept, window from tags or a named preset, MONOCHROME1,
               palette and YBR colour, multi-frame, compressed syntaxes (pylibjpeg), and
               `deidentify` / `PATIENT_TAGS`; `quiet_pydicom` keeps tag values out of logs.
- `nifti.py`   plane and slice choice in the canonical (RAS+) orientation, 4-D volumes,
               montages.
- `series.py`  a folder with one DICOM series: slices in anatomical order, slice or montage.

Every medical format ends as an 8-bit RGB image because that is what Qwen3-VL's
processor consumes; where the source has more dynamic range (CT Hounsfield units, 16-bit
radiographs), the window decides what the model sees.
"""
from medmo.imaging.core import Decoded, budget_size, decode, fit_pixels, open_image
from medmo.imaging.dicom import PATIENT_TAGS, deidentify, dicom_info
from medmo.imaging.limits import Budget, Limits, OverBudget
from medmo.imaging.pixels import FORMATS, WINDOW_PRESETS, parse_window, window_to_uint8

__all__ = ["FORMATS", "PATIENT_TAGS", "WINDOW_PRESETS", "Budget", "Decoded", "Limits", "OverBudget", "budget_size",
           "decode", "deidentify", "dicom_info", "fit_pixels", "open_image", "parse_window", "window_to_uint8"]
