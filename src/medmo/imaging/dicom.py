"""DICOM -> RGB, and de-identification.

Greyscale pipeline, in the order PS3.3 C.11 prescribes: stored values -> modality LUT
(RescaleSlope/Intercept, so CT is in Hounsfield units) -> VOI window (the caller's
preset or (centre, width); else the file's first WindowCenter/WindowWidth, read from
the frame's functional groups in enhanced multi-frame CT/MR; else its VOI
LUT; else the frame's min..max) -> MONOCHROME1 / INVERSE presentation flips it so bright
is always dense. A window from the file's tags goes through pydicom's `apply_windowing`
with the file's VOILUTFunction (LINEAR, the standard's default, with its half-value
offset; LINEAR_EXACT; SIGMOID, common in DX archives), onto 0..255; an undefined one
(an unknown name, LINEAR with a width under 1) is taken as LINEAR_EXACT. The caller's
window and the presets are applied as LINEAR_EXACT (`window_to_uint8`): a CT preset is
a range of Hounsfield units, not a display function.

Colour: PALETTE COLOR goes through its lookup tables; YBR is converted to RGB by
pydicom; 16-bit colour is scaled by BitsStored. Multi-frame files decode only the frame
asked for (default: the middle one). Compressed transfer syntaxes decode through
pydicom's plugins: baseline JPEG (Pillow), JPEG 2000 (pylibjpeg-openjpeg), RLE
(pydicom), JPEG lossless and JPEG-LS (python-gdcm). 12-bit "JPEG Extended" needs the
GPL-licensed pylibjpeg-libjpeg, which medmo does not install; such files, like any
syntax without a decoder, fail with a message naming the plugin to install.

`deidentify` runs on every dataset `open_image` reads, before anything else touches it,
so patient tags never reach records, logs or API responses. It removes, at every nesting
level and without decoding a value, every person name, date, date-time and time element
(VR PN, DA, DT, TM: a block list cannot name them all, e.g. ContentCreatorName or
VerifyingObserverSequence's VerifyingObserverName), PATIENT_TAGS (identifiers, UIDs,
institutions, free text) and all private tags. It keeps PatientSex and PatientAge
(clinical variables MedMO prompts may use; AS, not a date) and does not touch burned-in
text in the pixels. Departure from PS3.15's basic profile: elements are removed, never
replaced by dummy values, since nothing downstream reads them.

Logs: pydicom's validation warnings quote the offending value, so a patient tag that
breaks its VR (a UID holding an MRN) would be echoed into the serve log, infer's stderr
or the convert log. `quiet_pydicom` (run wherever medmo reads DICOM) turns reading
validation off, drops pydicom's Python warnings and scrubs quoted values from whatever
pydicom still logs; error messages are scrubbed the same way and the file's own patient
values are redacted from them.

Budgets (limits.py): a deflated file's inflated size is counted in 1 MB pieces before
pydicom inflates it; Rows x Columns (one frame) and x NumberOfFrames are checked before
any pixel data is decoded.
"""
from __future__ import annotations

import io
import logging
import math
import re
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from medmo.imaging.pixels import FORMATS, gray_to_rgb, one_line, window_to_uint8
from medmo.imaging.limits import Budget, Limits, OverBudget, inflated_size

log = logging.getLogger(__name__)

# DICOM keywords that identify a patient, a visit, a clinician or an institution
# (the identifying part of PS3.15 Annex E's basic profile).
PATIENT_TAGS: tuple[str, ...] = (
    # the patient
    "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "PatientBirthDate", "PatientBirthTime",
    "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "CountryOfResidence",
    "RegionOfResidence", "MilitaryRank", "BranchOfService", "MedicalRecordLocator", "EthnicGroup", "Occupation",
    "PatientReligiousPreference", "AdditionalPatientHistory", "PatientComments", "ResponsiblePerson",
    "ResponsibleOrganization", "PatientInsurancePlanCodeSequence", "ReferencedPatientSequence",
    # the institution and the people who saw the patient
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence", "StationName",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence",
    "NameOfPhysiciansReadingStudy", "PhysiciansReadingStudyIdentificationSequence", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "OperatorsName", "OperatorIdentificationSequence",
    "RequestingPhysician", "ScheduledPerformingPhysicianName",
    # the visit: identifiers, dates and times
    "AccessionNumber", "StudyID", "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID",
    "RequestAttributesSequence", "ReferencedStudySequence", "AdmissionID", "DeviceSerialNumber",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "AcquisitionDateTime", "InstanceCreationDate",
    "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "InstanceCreationTime",
    # UIDs link an image back to the hospital's archive
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "IrradiationEventUID",
    "ReferencedSOPInstanceUID", "MediaStorageSOPInstanceUID",
    # free text that often carries names
    "ImageComments", "StudyComments", "RequestedProcedureComments",
)

# Value representations removed wherever they occur: person names, dates, date-times, times.
IDENTIFYING_VRS = frozenset({"PN", "DA", "DT", "TM"})

# Non-identifying tags that describe the image, safe to copy into record meta.
INFO_TAGS = ("Modality", "BodyPartExamined", "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames",
             "BitsStored", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PixelSpacing",
             "SliceThickness", "ViewPosition", "Manufacturer")


# ------------------------------------------------------------------------- no values in logs
_QUOTED = re.compile(r"""b?'[^']*'|b?"[^"]*\"""")
_PYDICOM_MODULES = r"pydicom(\.|$)"
_quiet_lock = threading.Lock()


def scrub(text: str) -> str:
    """Quoted values out of a pydicom message ("Invalid value for VR UI: 'MRN123'" -> ...: '…')."""
    return _QUOTED.sub("'…'", text)


class _ScrubValues(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        return True


def quiet_pydicom() -> None:
    """Keep DICOM values out of every log (idempotent, cheap; process-wide, as pydicom's
    settings are): reading validation off, pydicom's warnings ignored (it also logs each
    one, scrubbed here), quoted values scrubbed from the "pydicom" loggers' records."""
    from pydicom import config

    import pydicom.pixels  # noqa: F401 - creates the pydicom.pixels.* loggers scrubbed below

    config.settings.reading_validation_mode = config.IGNORE
    with _quiet_lock:
        first = warnings.filters[0] if warnings.filters else None
        if not (first and first[0] == "ignore" and first[3] is not None and first[3].pattern == _PYDICOM_MODULES):
            warnings.filterwarnings("ignore", module=_PYDICOM_MODULES)  # re-inserted first if others came since
        names = ["pydicom"] + [n for n in logging.root.manager.loggerDict if n.startswith("pydicom.")]
        for name in names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _ScrubValues) for f in logger.filters):
                logger.addFilter(_ScrubValues())


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text


# ------------------------------------------------------------------------- de-identification
def _tags(dataset):
    """(tag, keyword, VR) of each element, without decoding any value (a raw element stays raw)."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    for tag in list(dataset.keys()):
        vr = getattr(dataset.get_item(tag), "VR", None)
        if vr is None:  # implicit VR: the dictionary's
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        yield tag, keyword_for_tag(tag), str(vr)


def deidentify(ds):
    """Remove every PN/DA/DT/TM element, PATIENT_TAGS and private tags, at every sequence depth
    (and the file meta's SOP instance UID); returns `ds`. Values are never decoded, so a
    malformed one can neither fail this nor reach a log."""
    quiet_pydicom()
    drop = set(PATIENT_TAGS)

    def strip(dataset) -> None:
        for tag, keyword, vr in _tags(dataset):
            if keyword in drop or vr in IDENTIFYING_VRS or tag.is_private:
                del dataset[tag]
            elif vr == "SQ":
                for item in dataset[tag].value:
                    strip(item)

    strip(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        del meta.MediaStorageSOPInstanceUID
    return ds


def patient_values(ds) -> list[str]:
    """The text of every element deidentify removes by name or VR (any depth), longest first:
    what a message must not contain."""
    values: set[str] = set()

    def visit(dataset) -> None:
        for tag, keyword, vr in _tags(dataset):
            if vr == "SQ":
                try:
                    for item in dataset[tag].value:
                        visit(item)
                except Exception:  # noqa: BLE001 - an unreadable sequence holds nothing we could print
                    pass
            elif keyword in PATIENT_TAGS or vr in IDENTIFYING_VRS:
                raw = dataset.get_item(tag).value
                text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
                for part in [text, *re.split(r"[\\^=]", text)]:
                    part = part.strip(" \x00")
                    if len(part) >= 3:
                        values.update({part, part.replace("^", " ")})

    visit(ds)
    if getattr(ds, "file_meta", None) is not None:
        visit(ds.file_meta)
    return sorted(values, key=len, reverse=True)


def dicom_info(ds) -> dict:
    """INFO_TAGS present in `ds` as plain JSON values (never a patient tag); a malformed one is left out."""
    out = {}
    for key in INFO_TAGS:
        try:
            v = ds.get(key)
            if v is None or v == "":
                continue
            if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
                out[key] = [_plain(x) for x in v]
            else:
                out[key] = _plain(v)
        except (ValueError, TypeError, OverflowError):
            continue
    return out


def _plain(v):
    """pydicom's IS/DS/PersonName-style values -> int/float/str."""
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    return str(v)


# ------------------------------------------------------------------------- reading
DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def transfer_syntax(data: bytes) -> tuple[str | None, int]:
    """(TransferSyntaxUID, offset where the dataset starts) from a Part-10 file's meta group,
    read by hand so nothing is inflated; (None, 0) without a meta group."""
    if data[128:132] != b"DICM":
        return None, 0
    pos, syntax = 132, None
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 2:
            break
        vr = bytes(data[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        if element == 0x0010:
            syntax = bytes(data[pos + head:pos + head + length]).rstrip(b"\x00 ").decode("ascii", "replace")
        pos += head + length
    return syntax, pos


def load_dicom(data: bytes, name: str, budget: Budget | None = None, *, stop_before_pixels: bool = False):
    """Parse (NOT yet de-identified: see read_dicom); a deflated file's inflated size is
    checked against the budget first. ValueError naming the file if it is not DICOM."""
    import pydicom

    quiet_pydicom()
    syntax, start = transfer_syntax(data)
    if syntax == DEFLATED and budget is not None and budget.limits.max_decompressed_bytes is not None:
        limit = budget.limits.max_decompressed_bytes
        size = inflated_size(memoryview(data)[start:], limit, wbits=-15, what=name)
        budget.inflate(size, name, "a deflated DICOM", counted=True)
    try:
        return pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM", stop_before_pixels=stop_before_pixels)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for a broken file
        raise ValueError(f"{name}: not a readable DICOM file ({type(e).__name__}: {one_line(scrub(str(e)))}); "
                         f"expected {FORMATS}") from None


def read_dicom(data: bytes, name: str, budget: Budget | None = None):
    """Parse and de-identify; ValueError naming the file if it is not DICOM."""
    return deidentify(load_dicom(data, name, budget))


def header_size(path: str | Path, limits: Limits | None = None) -> tuple[int, int]:
    """(width, height) = (Columns, Rows) of a DICOM file from its header, the pixels never read.

    For converters and statistics over many files: a deflated file (the whole dataset is one
    zlib stream) is inflated only within `limits.max_decompressed_bytes`, and pydicom's
    warnings never echo tag values (quiet_pydicom). ValueError naming the file otherwise."""
    import pydicom

    path = Path(path)
    quiet_pydicom()
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if transfer_syntax(head)[0] == DEFLATED:
        ds = load_dicom(path.read_bytes(), path.name, Budget(limits), stop_before_pixels=True)
    else:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"],
                                 force=head[128:132] != b"DICM")
        except Exception as e:  # noqa: BLE001 - pydicom raises many types for a broken file
            raise ValueError(f"{path.name}: not a readable DICOM header ({type(e).__name__}: "
                             f"{one_line(scrub(str(e)))})") from None
    if "Rows" not in ds or "Columns" not in ds:
        raise ValueError(f"{path.name}: DICOM header without Rows/Columns")
    return int(ds.Columns), int(ds.Rows)


def open_dicom(data: bytes, name: str, *, window: tuple[float, float] | None = None,
               frame: int | None = None, budget: Budget | None = None) -> Image.Image:
    return decode_dicom(data, name, window=window, frame=frame, budget=budget)[0]


def decode_dicom(data: bytes, name: str, *, window: tuple[float, float] | None = None, frame: int | None = None,
                 budget: Budget | None = None) -> tuple[Image.Image, dict]:
    """(RGB image, de-identified dicom_info). Every error is a one-line ValueError with quoted
    values scrubbed and the file's patient values redacted (OverBudget passes as it is)."""
    ds = load_dicom(data, name, budget)
    secrets: list[str] = []
    try:
        secrets = patient_values(ds)
        deidentify(ds)
        return _render(ds, name, window, frame, budget), dicom_info(ds)
    except (OverBudget, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - pydicom and its plugins raise many types
        text = str(e) if isinstance(e, ValueError) else f"{name}: cannot be read as dicom ({type(e).__name__}: {e})"
        raise ValueError(redact(one_line(scrub(text)), secrets)) from None


def _render(ds, name: str, window, frame, budget: Budget | None) -> Image.Image:
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ValueError(f"{name}: DICOM has no pixel data (Modality {ds.get('Modality', '?')}, e.g. a report or "
                         "RT plan); expected an image object such as CT, MR, CR/DX or US")
    n = int(ds.get("NumberOfFrames") or 1)
    if budget is not None:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        if n > 1:
            budget.volume((cols, rows, n), name, "multi-frame DICOM")
        budget.image(cols, rows, name)  # the one frame decoded
    idx = n // 2 if frame is None else frame
    if not 0 <= idx < n:
        raise ValueError(f"{name}: frame {frame} out of range; it has {n} frame(s)")
    try:
        arr = pixel_array(ds, index=idx if n > 1 else None)
    except (NotImplementedError, RuntimeError, ValueError) as e:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        raise ValueError(f"{name}: cannot decode pixel data in transfer syntax "
                         f"{getattr(syntax, 'name', syntax)} ({e}); install the matching decoder "
                         "(pylibjpeg-libjpeg for 12-bit JPEG, pylibjpeg-openjpeg for JPEG 2000, "
                         "python-gdcm for JPEG lossless / JPEG-LS)") from e
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        return Image.fromarray(_scale_color(rgb, 16 if rgb.dtype != np.uint8 else 8), mode="RGB")
    if arr.ndim == 3:
        return Image.fromarray(_scale_color(arr, int(ds.get("BitsStored") or 8)), mode="RGB")
    slope = _frame_value(ds, idx, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_value(ds, idx, "PixelValueTransformationSequence", "RescaleIntercept")
    if "RescaleSlope" not in ds and slope is not None and intercept is not None:  # enhanced multi-frame
        values = arr.astype(np.float64) * float(slope) + float(intercept)
    else:
        values = apply_modality_lut(arr, ds)
    tag_window = None if window is not None else _tag_window(
        _frame_value(ds, idx, "FrameVOILUTSequence", "WindowCenter"),
        _frame_value(ds, idx, "FrameVOILUTSequence", "WindowWidth"))
    if tag_window is not None:
        out = voi_window(values, tag_window, _frame_value(ds, idx, "FrameVOILUTSequence", "VOILUTFunction"))
    else:
        if window is None and "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds)
        out = window_to_uint8(values, window)
    if photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE":
        out = 255 - out
    return gray_to_rgb(out)


def _frame_value(ds, idx: int, group: str, key: str):
    """`key` for frame `idx`: enhanced multi-frame files keep rescale and window in
    per-frame or shared functional groups instead of the top level."""
    if key in ds:
        return ds.get(key)
    for name, item_index in (("PerFrameFunctionalGroupsSequence", idx), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(name)
        if groups and item_index < len(groups) and groups[item_index].get(group):
            value = groups[item_index].get(group)[0].get(key)
            if value is not None:
                return value
    return None


VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_VOI_CHUNK = 1 << 20  # values per apply_windowing call: its float64 temporaries stay near 40 MB on any frame


def voi_window(values: np.ndarray, window: tuple[float, float], function=None) -> np.ndarray:
    """A window from the file's tags -> uint8 by pydicom's `apply_windowing` with VOILUTFunction
    `function` (None: LINEAR, the standard's default). pydicom maps onto the range of the
    stored values; a view dataset declaring 8-bit unsigned output makes that range 0..255."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_windowing

    name = str(function or "LINEAR").strip().upper()
    if name not in VOI_FUNCTIONS or (name == "LINEAR" and window[1] < 1):
        log.warning("DICOM VOILUTFunction not defined for this window (unknown, or LINEAR with a width under 1); "
                    "windowing as LINEAR_EXACT")
        name = "LINEAR_EXACT"
    view = Dataset()
    view.PhotometricInterpretation, view.BitsStored, view.PixelRepresentation = "MONOCHROME2", 8, 0
    view.WindowCenter, view.WindowWidth, view.VOILUTFunction = window[0], window[1], name
    flat = np.asarray(values).reshape(-1)
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.size, _VOI_CHUNK):
        with np.errstate(over="ignore"):  # SIGMOID far from the centre: exp overflows to the right limit
            y = apply_windowing(flat[start:start + _VOI_CHUNK], view)
        np.nan_to_num(y, copy=False, nan=0.0)
        y += 0.5
        np.clip(y, 0, 255, out=y)
        out[start:start + _VOI_CHUNK] = y  # truncation after +0.5: rounding, as window_to_uint8 does
    return out.reshape(np.shape(values))


def _tag_window(c, w) -> tuple[float, float] | None:
    if c is None or w is None or c == "" or w == "":
        return None
    c = c[0] if type(c).__name__ == "MultiValue" else c
    w = w[0] if type(w).__name__ == "MultiValue" else w
    try:
        c, w = float(c), float(w)
    except (TypeError, ValueError):
        log.warning("ignoring a malformed DICOM window (WindowCenter/WindowWidth)")
        return None
    return (c, w) if w > 0 and math.isfinite(c) and math.isfinite(w) else None


def _scale_color(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    top = float(2 ** min(max(bits, 8), 32) - 1)
    return np.clip(arr.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
