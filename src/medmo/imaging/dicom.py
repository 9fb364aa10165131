"""DICOM -> RGB, and de-identification.

Greyscale pipeline, in the order PS3.3 C.11 prescribes: stored values -> modality LUT
(RescaleSlope/Intercept, so CT is in Hounsfield units) -> VOI window (the caller's
preset or (centre, width); else the file's first WindowCenter/WindowWidth, read from
the frame's functional groups in enhanced multi-frame CT/MR; else its VOI
LUT; else the frame's min..max) -> MONOCHROME1 / INVERSE presentation flips it so bright
is always dense. The window is applied linearly (the "LINEAR_EXACT" form), a departure
from the standard's half-pixel-offset LINEAR form that changes at most one grey level.

Colour: PALETTE COLOR goes through its lookup tables; YBR is converted to RGB by
pydicom; 16-bit colour is scaled by BitsStored. Multi-frame files decode only the frame
asked for (default: the middle one). Compressed transfer syntaxes decode through
pydicom's plugins: baseline JPEG (Pillow), JPEG 2000 (pylibjpeg-openjpeg), RLE
(pydicom), JPEG lossless and JPEG-LS (python-gdcm). 12-bit "JPEG Extended" needs the
GPL-licensed pylibjpeg-libjpeg, which medmo does not install; such files, like any
syntax without a decoder, fail with a message naming the plugin to install.

`deidentify` runs on every dataset `open_image` reads, before anything else touches it,
so patient tags never reach records, logs or API responses. It removes PATIENT_TAGS at
every nesting level plus all private tags. It keeps PatientSex and PatientAge (clinical
variables MedMO prompts may use) and does not touch burned-in text in the pixels.
"""
from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from medmo.imaging.core import FORMATS, gray_to_rgb, window_to_uint8

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

# Non-identifying tags that describe the image, safe to copy into record meta.
INFO_TAGS = ("Modality", "BodyPartExamined", "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames",
             "BitsStored", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PixelSpacing",
             "SliceThickness", "ViewPosition", "Manufacturer")


def deidentify(ds):
    """Remove PATIENT_TAGS (at every sequence depth, and in file meta) and private tags; returns `ds`."""
    drop = set(PATIENT_TAGS)

    def strip(dataset) -> None:
        for elem in list(dataset):
            if elem.keyword in drop:
                del dataset[elem.tag]
            elif elem.VR == "SQ":
                for item in elem.value:
                    strip(item)

    strip(ds)
    ds.remove_private_tags()
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        del meta.MediaStorageSOPInstanceUID
    return ds


def dicom_info(ds) -> dict:
    """INFO_TAGS present in `ds` as plain JSON values (never a patient tag)."""
    out = {}
    for key in INFO_TAGS:
        v = ds.get(key)
        if v is None or v == "":
            continue
        if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
            out[key] = [_plain(x) for x in v]
        else:
            out[key] = _plain(v)
    return out


def _plain(v):
    """pydicom's IS/DS/PersonName-style values -> int/float/str."""
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    return str(v)


def read_dicom(data: bytes, name: str):
    """Parse and de-identify; ValueError naming the file if it is not DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM")
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{name}: not a readable DICOM file ({e}); expected {FORMATS}") from e
    return deidentify(ds)


def open_dicom(data: bytes, name: str, *, window: tuple[float, float] | None = None,
               frame: int | None = None) -> Image.Image:
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

    ds = read_dicom(data, name)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ValueError(f"{name}: DICOM has no pixel data (Modality {ds.get('Modality', '?')}, e.g. a report or "
                         "RT plan); expected an image object such as CT, MR, CR/DX or US")
    n = int(ds.get("NumberOfFrames") or 1)
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
    if window is None:
        window = _tag_window(_frame_value(ds, idx, "FrameVOILUTSequence", "WindowCenter"),
                             _frame_value(ds, idx, "FrameVOILUTSequence", "WindowWidth"))
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


def _tag_window(c, w) -> tuple[float, float] | None:
    if c is None or w is None or c == "" or w == "":
        return None
    c = c[0] if type(c).__name__ == "MultiValue" else c
    w = w[0] if type(w).__name__ == "MultiValue" else w
    try:
        c, w = float(c), float(w)
    except (TypeError, ValueError):
        log.warning("ignoring a malformed DICOM window (%r, %r)", c, w)
        return None
    return (c, w) if w > 0 else None


def _scale_color(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    top = float(2 ** min(max(bits, 8), 32) - 1)
    return np.clip(arr.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
