"""medmo.imaging on the real files pydicom and nibabel ship (no downloads), plus rasters written here."""
from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medmo.imaging import PATIENT_TAGS, WINDOW_PRESETS, budget_size, deidentify, dicom_info, fit_pixels, open_image
from medmo.imaging.core import sniff, window_to_uint8

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"


def dcm(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


def px(im: Image.Image) -> np.ndarray:
    assert im.mode == "RGB"
    return np.asarray(im)


# ---- DICOM --------------------------------------------------------------------------

@pytest.mark.parametrize("name,size", [
    ("CT_small.dcm", (128, 128)),           # CT, explicit little endian, RescaleIntercept -1024
    ("MR_small.dcm", (64, 64)),             # MR with WindowCenter/Width tags
    ("693_J2KI.dcm", (512, 512)),           # CT compressed as JPEG 2000 (pylibjpeg-openjpeg)
    ("SC_rgb_jpeg_gdcm.dcm", (100, 100)),   # RGB in JPEG lossless (process 14, python-gdcm)
    ("examples_jpeg2k.dcm", (640, 480)),    # ultrasound, YBR_RCT in JPEG 2000
    ("examples_palette.dcm", (800, 350)),   # ultrasound, PALETTE COLOR
    ("examples_ybr_color.dcm", (320, 240)), # 30-frame ultrasound, YBR_FULL_422 JPEG
])
def test_dicom_opens_as_rgb_with_contrast(name, size):
    a = px(open_image(dcm(name)))
    assert a.shape[:2] == (size[1], size[0])
    assert a.std() > 5  # not a flat image: windowing produced real contrast


def test_ct_rescale_and_presets_follow_hounsfield_units():
    path = dcm("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    for preset in ("lung", "bone", "brain", "abdomen", "mediastinum"):
        expected = window_to_uint8(hu, WINDOW_PRESETS[preset])
        assert np.array_equal(px(open_image(path, window=preset))[..., 0], expected), preset
    # a custom (centre, width) equals the named preset with the same numbers
    assert np.array_equal(px(open_image(path, window=(-600, 1500))), px(open_image(path, window="lung")))
    assert not np.array_equal(px(open_image(path, window="lung")), px(open_image(path, window="bone")))


def pydicom_display(values: np.ndarray, ds) -> np.ndarray:
    """pydicom's own windowing of `ds`'s first window (and VOILUTFunction), scaled from its
    output range (the stored values' range, found by windowing two extreme values) to 0..255."""
    from pydicom.pixels import apply_voi_lut

    with np.errstate(over="ignore"):  # SIGMOID's exp far from the centre
        y = apply_voi_lut(values, ds, prefer_lut=False)
        lo, hi = apply_voi_lut(np.array([-1e12, 1e12]), ds, prefer_lut=False)
    return np.clip((y - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _dx(function: str | None) -> pydicom.Dataset:
    """A DX radiograph's tag layout: 12 bits stored unsigned, no rescale, MONOCHROME1, two
    windows (the first applies), VOILUTFunction as given (real DX archives use SIGMOID)."""
    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    ds.PixelData = np.clip(ds.pixel_array, 0, 4095).astype(np.uint16).tobytes()
    ds.Modality, ds.PhotometricInterpretation = "DX", "MONOCHROME1"
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.WindowCenter, ds.WindowWidth = [1100, 1300], [900, 2000]
    if function is not None:
        ds.VOILUTFunction = function
    return ds


def _ct(function: str | None) -> pydicom.Dataset:
    """CT: 16 bits signed, RescaleIntercept -1024, a soft-tissue window in Hounsfield units."""
    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = 40, 400
    if function is not None:
        ds.VOILUTFunction = function
    return ds


def _mr(function: str | None) -> pydicom.Dataset:
    ds = pydicom.dcmread(dcm("MR_small.dcm"))  # its own WindowCenter/WindowWidth tags
    if function is not None:
        ds.VOILUTFunction = function
    return ds


@pytest.mark.parametrize("make", [_ct, _mr, _dx], ids=["ct", "mr", "dx"])
@pytest.mark.parametrize("function", [None, "LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_tag_windows_follow_voi_lut_function_as_pydicom_does(make, function):
    from pydicom.pixels import apply_modality_lut

    ds = make(function)
    buf = io.BytesIO()
    ds.save_as(buf)
    expected = pydicom_display(apply_modality_lut(ds.pixel_array, ds), ds)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 255 - expected
    got = px(open_image(buf.getvalue()))[..., 0].astype(int)
    diff = np.abs(got - expected)
    # pydicom scales onto the stored range (0..4095, -32768..32767), medmo straight onto 0..255:
    # the same number up to float rounding, which can move a value sitting exactly on .5
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())


def test_sigmoid_is_not_a_linear_window():
    # what the issue measured: reading a SIGMOID DX window as linear is tens of grey levels off
    sigmoid, linear = io.BytesIO(), io.BytesIO()
    _dx("SIGMOID").save_as(sigmoid)
    _dx("LINEAR").save_as(linear)
    a, b = px(open_image(sigmoid.getvalue())).astype(int), px(open_image(linear.getvalue())).astype(int)
    assert np.abs(a - b).max() >= 20


@pytest.mark.parametrize("function,width", [
    ("LINEAR", 0.5),        # LINEAR needs width >= 1 (PS3.3 C.11.2.1.2.1): windowed as LINEAR_EXACT
    ("GAMMA", 400),         # not a VOILUTFunction: windowed as LINEAR_EXACT, with a warning
])
def test_undefined_voi_functions_fall_back_to_linear_exact(function, width, caplog):
    from medmo.imaging.dicom import voi_window

    values = np.linspace(-300, 300, 101)
    with caplog.at_level("WARNING"):
        got = voi_window(values, (0.0, width), function)
    assert np.array_equal(got, voi_window(values, (0.0, width), "LINEAR_EXACT"))
    assert "windowing as LINEAR_EXACT" in caplog.text and "GAMMA" not in caplog.text  # no file value logged


def test_voi_window_in_chunks_equals_one_call(monkeypatch):
    import medmo.imaging.dicom as dicom

    values = np.random.default_rng(0).normal(0, 500, (37, 53))
    whole = dicom.voi_window(values, (10.0, 700.0), "SIGMOID")
    monkeypatch.setattr(dicom, "_VOI_CHUNK", 100)  # 20 chunks, the last one short
    assert np.array_equal(dicom.voi_window(values, (10.0, 700.0), "SIGMOID"), whole)


@pytest.mark.parametrize("compressed", [
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless (python-gdcm)
    "MR_small_jp2klossless.dcm",      # JPEG 2000 lossless (pylibjpeg-openjpeg)
    "MR_small_RLE.dcm",               # RLE lossless (pydicom)
])
def test_lossless_syntaxes_decode_to_the_same_pixels(compressed):
    assert np.array_equal(px(open_image(dcm(compressed))), px(open_image(dcm("MR_small.dcm"))))


def test_monochrome1_is_inverted():
    ds = pydicom.dcmread(dcm("MR_small.dcm"))
    buf = io.BytesIO()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(buf)
    normal = px(open_image(dcm("MR_small.dcm")))
    assert np.array_equal(px(open_image(buf.getvalue())), 255 - normal)


def test_multiframe_frame_choice():
    path = dcm("examples_ybr_color.dcm")
    first, last = px(open_image(path, frame=0)), px(open_image(path, frame=29))
    assert not np.array_equal(first, last)
    assert np.array_equal(px(open_image(path)), px(open_image(path, frame=15)))  # default: the middle frame
    with pytest.raises(ValueError, match="frame 30 out of range; it has 30"):
        open_image(path, frame=30)


def test_enhanced_multiframe_reads_rescale_and_window_per_frame():
    # CT_small turned into a 2-frame enhanced-style file: rescale in the shared functional
    # group, a different window per frame, nothing at the top level
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    stored = ds.pixel_array
    hu = stored * 1.0 - 1024.0
    ds.PixelData = np.stack([stored, stored[::-1]]).astype(stored.dtype).tobytes()
    ds.NumberOfFrames = 2
    del ds.RescaleSlope, ds.RescaleIntercept
    shared = Dataset()
    shared.PixelValueTransformationSequence = Sequence([Dataset()])
    shared.PixelValueTransformationSequence[0].RescaleSlope = 1
    shared.PixelValueTransformationSequence[0].RescaleIntercept = -1024
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for centre, width, function in ((40, 400, "LINEAR_EXACT"), (-600, 1500, "SIGMOID")):
        item = Dataset()
        item.FrameVOILUTSequence = Sequence([Dataset()])
        voi = item.FrameVOILUTSequence[0]
        voi.WindowCenter, voi.WindowWidth, voi.VOILUTFunction = centre, width, function
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    for k, values in ((0, hu), (1, hu[::-1])):
        voi = ds.PerFrameFunctionalGroupsSequence[k].FrameVOILUTSequence[0]
        view = pydicom.Dataset()  # the frame's window at the top level, as pydicom reads it
        view.PhotometricInterpretation, view.BitsStored, view.PixelRepresentation = "MONOCHROME2", 16, 1
        view.WindowCenter, view.WindowWidth, view.VOILUTFunction = voi.WindowCenter, voi.WindowWidth, voi.VOILUTFunction
        diff = np.abs(px(open_image(data, frame=k))[..., 0].astype(int) - pydicom_display(values, view))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, k


def test_dicom_from_bytes_and_file_objects():
    path = dcm("CT_small.dcm")
    data = Path(path).read_bytes()
    assert np.array_equal(px(open_image(data)), px(open_image(path)))
    with open(path, "rb") as f:
        assert np.array_equal(px(open_image(f)), px(open_image(path)))
    assert sniff(data) == "dicom"


@pytest.mark.parametrize("name,match", [
    ("reportsi.dcm", "no pixel data"),                     # a structured report
    ("JPGExtended.dcm", "pylibjpeg-libjpeg for 12-bit"),  # 12-bit JPEG: its decoder is GPL, not installed
])
def test_dicom_errors_are_clear(name, match):
    with pytest.raises(ValueError, match=match):
        open_image(dcm(name))


def test_deidentify_strips_every_patient_tag_at_every_depth():
    from pydicom.datadict import keyword_dict

    unknown = [k for k in PATIENT_TAGS if k not in keyword_dict]
    assert not unknown, f"not DICOM keywords: {unknown}"
    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    assert str(ds.PatientName) and "PatientID" in ds
    ds.add_new("InstitutionName", "LO", "St Example Hospital")
    ds.add_new("ReferringPhysicianName", "PN", "Doe^Jane")
    item = pydicom.Dataset()
    item.PatientName = "Nested^Name"
    ds.add_new("ReferencedImageSequence", "SQ", pydicom.Sequence([item]))
    pixels = ds.pixel_array.copy()
    deidentify(ds)
    found = []
    ds.walk(lambda d, e: found.append(e.keyword) if e.keyword in PATIENT_TAGS else None)
    assert found == []
    assert not any(e.tag.is_private for e in ds.iterall())
    assert "MediaStorageSOPInstanceUID" not in ds.file_meta
    assert np.array_equal(ds.pixel_array, pixels)  # the image itself is untouched
    assert "Nested" not in str(ds) and "Doe" not in str(ds) and "CompressedSamples" not in str(ds)


def _dated_dicom(implicit: bool = False) -> bytes:
    """CT_small with names, dates and times outside PATIENT_TAGS, nested two sequences deep,
    some breaking their VR (so pydicom would quote them in a warning), plus a nested private tag."""
    from pydicom import config
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    modes = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        ds = pydicom.dcmread(dcm("CT_small.dcm"))
        ds.PatientSex, ds.PatientAge = "F", "054Y"
        ds.ContentCreatorName = "Qzxvbn^Creator"                    # PN, top level
        ds.PerformedProcedureStepStartDate = "Qzxvbn-5550193"        # DA holding an identifier
        ds.PerformedProcedureStepStartTime = "235959"                # TM
        observer = pydicom.Dataset()
        observer.VerifyingObserverName = "Wlkjhg^Observer" + "^X" * 40  # PN over its component length
        observer.VerificationDateTime = "20240102030405"             # DT
        observer.VerifyingOrganization = "Clinic"
        ds.VerifyingObserverSequence = pydicom.Sequence([observer])
        inner = pydicom.Dataset()
        inner.ObservationDateTime = "20230405060708"                 # DT, two sequences deep
        inner.PersonName = "Wlkjhg^Inner"                            # PN, two sequences deep
        inner.add_new(0x00111010, "LO", "Qzxvbn nested private")
        outer = pydicom.Dataset()
        outer.ContentSequence = pydicom.Sequence([inner])
        outer.ValueType = "CONTAINER"
        ds.ContentSequence = pydicom.Sequence([outer])
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        buf = io.BytesIO()
        ds.save_as(buf, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes
    return buf.getvalue()


DATED_SECRETS = ("Qzxvbn", "Wlkjhg", "5550193", "235959", "20240102030405", "20230405060708")


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit_vr", "implicit_vr"])
def test_deidentify_removes_every_name_date_and_time_at_any_depth(implicit):
    from medmo.imaging.dicom import IDENTIFYING_VRS

    ds = pydicom.dcmread(io.BytesIO(_dated_dicom(implicit)))
    deidentify(ds)
    left = []
    ds.walk(lambda d, e: left.append(e.keyword) if e.VR in IDENTIFYING_VRS or e.tag.is_private else None)
    assert left == []
    text = str(ds)
    assert not [s for s in DATED_SECRETS if s in text]
    # what is not identifying stays: the structure, clinical variables, the image
    assert ds.VerifyingObserverSequence[0].VerifyingOrganization == "Clinic"
    assert ds.ContentSequence[0].ValueType == "CONTAINER" and len(ds.ContentSequence[0].ContentSequence) == 1
    assert (ds.PatientSex, ds.PatientAge, ds.Modality) == ("F", "054Y", "CT")
    assert ds.pixel_array.shape == (128, 128)


def test_names_dates_and_times_reach_no_log_or_message(caplog, recwarn):
    import logging

    from medmo.imaging import decode
    from medmo.imaging.dicom import patient_values

    data = _dated_dicom()
    assert {"Qzxvbn-5550193", "235959"} <= set(patient_values(pydicom.dcmread(io.BytesIO(data))))
    no_pixels = pydicom.dcmread(io.BytesIO(data))
    del no_pixels.PixelData
    buf = io.BytesIO()
    no_pixels.save_as(buf)
    with caplog.at_level(logging.DEBUG):
        out = decode(data)
        with pytest.raises(ValueError) as e:
            open_image(buf.getvalue())
    assert out.image.size == (128, 128)
    for text in [caplog.text, str(e.value), json_dump(out.info)] + [str(w.message) for w in recwarn]:
        assert not [s for s in DATED_SECRETS if s in text], text


def test_dicom_info_has_no_patient_tags():
    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    info = dicom_info(ds)
    assert info["Modality"] == "CT" and info["Rows"] == 128
    assert not set(info) & set(PATIENT_TAGS)


def _write_series(folder: Path, n: int = 5) -> list[np.ndarray]:
    """CT_small as an n-slice series: slice z has pixels + 100*z, files named in shuffled order."""
    folder.mkdir()
    base = pydicom.dcmread(dcm("CT_small.dcm"))
    slices = []
    for z in range(n):
        ds = pydicom.dcmread(dcm("CT_small.dcm"))
        arr = (base.pixel_array + 100 * z).astype(base.pixel_array.dtype)
        ds.PixelData = arr.tobytes()
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 5.0 * z]
        ds.InstanceNumber = n - z  # deliberately the reverse of the anatomical order
        ds.save_as(folder / f"{(z * 3) % n:03d}.dcm")
        slices.append(arr)
    (folder / "notes.txt").write_text("not DICOM")  # skipped
    return slices


def test_dicom_series_folder(tmp_path):
    slices = _write_series(tmp_path / "series")
    hu = [s * 1.0 - 1024 for s in slices]
    for k in (0, 4):  # ordered by position along the normal, not by file name or InstanceNumber
        got = px(open_image(tmp_path / "series", slice_index=k, window="abdomen"))[..., 0]
        assert np.array_equal(got, window_to_uint8(hu[k], WINDOW_PRESETS["abdomen"]))
    assert np.array_equal(px(open_image(tmp_path / "series", window="abdomen")),
                          px(open_image(tmp_path / "series", slice_index=2, window="abdomen")))  # the middle
    assert open_image(tmp_path / "series", montage=4).size == (256, 256)
    with pytest.raises(ValueError, match="out of range; the series has 5 slices"):
        open_image(tmp_path / "series", slice_index=5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DICOM image in this folder"):
        open_image(tmp_path / "empty")


# ---- NIfTI --------------------------------------------------------------------------

def test_nifti_planes_slices_and_montage():
    path = NIB_DATA / "anatomical.nii"  # 33 x 41 x 25, LAS storage
    mid = open_image(path)
    assert mid.size == (33, 41)  # axial: x across, y down
    assert np.array_equal(px(mid), px(open_image(path, slice_index=12)))  # default: the middle slice
    assert not np.array_equal(px(open_image(path, slice_index=5)), px(mid))
    assert open_image(path, plane="coronal").size[0] == 33
    assert open_image(path, plane="sagittal").size[0] == 41
    grid = open_image(path, montage=9)
    assert grid.size == (3 * 33, 3 * 41)
    with pytest.raises(ValueError, match="out of range; the axial plane has 25"):
        open_image(path, slice_index=25)
    with pytest.raises(ValueError, match="plane 'axail'"):
        open_image(path, plane="axail")


def test_nifti_reorientation_is_canonical():
    # the same data stored flipped along x (RAS vs LAS) must render identically
    img = nib.load(NIB_DATA / "anatomical.nii")
    data = np.asanyarray(img.dataobj)
    flipped = nib.Nifti1Image(data[::-1].copy(), img.affine @ np.diag([-1, 1, 1, 1]) @ _shift(data.shape[0]))
    assert np.array_equal(px(open_image(img.to_bytes())), px(open_image(flipped.to_bytes())))


def _shift(nx):
    m = np.eye(4)
    m[0, 3] = -(nx - 1)
    return m


def test_nifti_4d_gzip_and_volume_choice():
    path = NIB_DATA / "example4d.nii.gz"  # 128 x 96 x 24 x 2
    v0, v1 = px(open_image(path, frame=0)), px(open_image(path, frame=1))
    assert v0.shape[:2] == (96, 128) and v0.std() > 5
    assert not np.array_equal(v0, v1)
    assert np.array_equal(px(open_image(path.read_bytes())), v0)
    with pytest.raises(ValueError, match="2 volume"):
        open_image(path, frame=2)


# ---- rasters ------------------------------------------------------------------------

def test_16bit_png_uses_its_own_range(tmp_path):
    arr = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)  # 12-bit data in 16 bits
    Image.fromarray(arr).save(tmp_path / "x.png")
    out = px(open_image(tmp_path / "x.png"))[..., 0]
    assert out.min() == 0 and out.max() == 255  # not almost black as a /257 scaling would give
    assert np.array_equal(out, window_to_uint8(arr))


def test_16bit_multipage_tiff(tmp_path):
    import tifffile

    ramp = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000  # up to 63000
    tifffile.imwrite(tmp_path / "x.tif", np.stack([ramp, ramp.max() - ramp]))  # page 1 is the reverse
    a0, a1 = px(open_image(tmp_path / "x.tif", frame=0)), px(open_image(tmp_path / "x.tif", frame=1))
    assert (a0[0, 0, 0], a0[7, 7, 0]) == (0, 255)
    assert (a1[0, 0, 0], a1[7, 7, 0]) == (255, 0)
    assert np.array_equal(px(open_image(tmp_path / "x.tif")), a0)  # default: the first page


def test_8bit_rasters_and_errors(tmp_path):
    Image.new("L", (10, 20), 77).save(tmp_path / "g.jpg")
    Image.new("RGBA", (5, 5), (1, 2, 3, 4)).save(tmp_path / "c.png")
    assert px(open_image(tmp_path / "g.jpg")).shape == (20, 10, 3)
    assert tuple(px(open_image(tmp_path / "c.png"))[0, 0]) == (1, 2, 3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png.*expected PNG, JPEG"):
        open_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        open_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="Did you mean 'lung'"):
        open_image(tmp_path / "g.jpg", window="lungs")


# ---- resolution budgets ---------------------------------------------------------------

@pytest.mark.parametrize("size,max_pixels,expected", [
    ((224, 224), 768 * 768, (224, 224)),      # already fits, already multiples of 32
    ((500, 300), 768 * 768, (512, 288)),      # rounds to the nearest multiple of 32
    ((2048, 2048), 768 * 768, (768, 768)),    # stage-1 budget
    ((2048, 1024), 1280 * 1280, (1792, 896)), # stage-2 budget keeps 2:1
    ((3000, 10), 768 * 768, (3008, 32)),      # a side never goes below one 32-px patch
])
def test_budget_size(size, max_pixels, expected):
    w, h = budget_size(*size, max_pixels)
    assert (w, h) == expected
    assert w % 32 == 0 and h % 32 == 0 and w * h <= max_pixels


@pytest.mark.parametrize("size, budget", [((1024, 1024), 256 * 256), ((1000, 600), 256 * 256),
                                           ((1024, 768), 300 * 200), ((640, 480), 512 * 512)])
def test_jpeg_draft_decodes_at_least_the_budget_size(size, budget):
    """`draft` decodes a JPEG at a DCT scale that still covers the size `budget_size` shrinks it to;
    after that shrink it is within a few grey levels of a full decode + the same shrink."""
    from medmo.imaging import decode

    rng = np.random.default_rng(1)
    smooth = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(smooth).resize(size, Image.BILINEAR).save(buf, format="JPEG", quality=90)
    full = decode(buf.getvalue()).image
    drafted = decode(buf.getvalue(), draft=budget).image
    target = budget_size(*size, budget)
    assert full.size == size and drafted.mode == "RGB"
    assert target[0] <= drafted.width <= size[0] and target[1] <= drafted.height <= size[1]
    if size[0] * size[1] > 4 * budget:  # at least one halving was possible
        assert drafted.width < size[0]
    a = np.asarray(full.resize(target, Image.BICUBIC), dtype=float)
    b = np.asarray(drafted.resize(target, Image.BICUBIC), dtype=float)
    assert np.abs(a - b).mean() < 3


def test_draft_leaves_other_formats_and_small_jpegs_alone():
    from medmo.imaging import decode

    png, jpg = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (800, 600), (90, 20, 200)).save(png, format="PNG")
    Image.new("L", (120, 90), 77).save(jpg, format="JPEG")
    assert decode(png.getvalue(), draft=64 * 64).image.size == (800, 600)
    assert decode(jpg.getvalue(), draft=256 * 256).image.size == (120, 90)  # already within the budget


def test_fit_pixels_keeps_aspect():
    im = fit_pixels(Image.new("RGB", (4000, 3000)), 768 * 768)
    assert im.width * im.height <= 768 * 768 and im.width % 32 == 0 and im.height % 32 == 0
    assert abs(im.width / im.height - 4 / 3) < 0.05


# ---- hostile input: junk, windows, patient values in logs -----------------------------

JUNK = [
    # (what, bytes, name): every one must be a one-line ValueError naming the file, nothing else
    ("gzip magic, invalid deflate block", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 16, "x.png"),
    ("gzip magic, unknown method", b"\x1f\x8bjunkjunkjunk", "x.nii.gz"),
    ("gzip magic only", b"\x1f\x8b", "x.bin"),
    ("truncated .nii.gz", None, "t.nii.gz"),
    ("NIfTI header with a negative dim", None, "neg.nii"),
    ("DICM magic, then junk", b"\0" * 128 + b"DICM" + b"\xff" * 64, "x.dcm"),
    ("TIFF magic, then junk", b"II*\x00" + b"\xff" * 64, "x.tif"),
    ("PNG signature, truncated", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "x.png"),
    ("text", b"hello\nworld\n", "notes.txt"),
    ("empty", b"", "empty.png"),
]


def _junk(kind: str, data: bytes | None) -> bytes:
    if data is not None:
        return data
    img = nib.Nifti1Image(np.random.default_rng(0).integers(0, 99, (32, 32, 32), dtype=np.int16), np.eye(4))
    if kind.startswith("truncated"):
        import gzip

        return gzip.compress(img.to_bytes())[:20_000]
    raw = bytearray(img.to_bytes())
    raw[42:44] = (-5).to_bytes(2, "little", signed=True)  # dim[1]
    return bytes(raw)


@pytest.mark.parametrize("what,data,name", JUNK, ids=[j[0] for j in JUNK])
def test_junk_is_a_one_line_value_error_naming_the_file(tmp_path, what, data, name):
    path = tmp_path / name
    path.write_bytes(_junk(what, data))
    with pytest.raises(ValueError) as e:
        open_image(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value), str(e.value)
    with pytest.raises(ValueError):
        open_image(path.read_bytes())  # from bytes too (the HTTP path): never zlib.error, OSError, ...


def test_sniff_refuses_gzip_junk_as_a_value_error():
    assert sniff(b"\x1f\x8b\x08\x00" + b"\x00" * 6, "ok.png") == "raster"  # an empty gzip stream: not NIfTI
    with pytest.raises(ValueError, match=r"junk.png: corrupt gzip stream .*expected PNG"):
        sniff(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 16, "junk.png")


@pytest.mark.parametrize("window,expected", [
    (None, None), ("", None), ("  ", None),
    ("lung", (-600.0, 1500.0)), (" Soft tissue ", (40.0, 400.0)),
    ("-600,1500", (-600.0, 1500.0)), (" 40 , 400 ", (40.0, 400.0)),   # the CLI's and the API's string form
    ((40, 400), (40.0, 400.0)), ([40.5, 1], (40.5, 1.0)), (["40", "400"], (40.0, 400.0)),
    ("1,inf", "finite"), ("nan,400", "finite"), ([1, float("inf")], "finite"), ((float("nan"), 1), "finite"),
    ("1e400,5", "finite"),                  # overflows to inf
    ("40,0", "width must be > 0"), ([40, -5], "width must be > 0"),
    ("a,b", "preset name"), ("1,2,3", "preset name"), ([True, 5], "preset name"), (7, "preset name"),
    ("lungs", "Did you mean 'lung'"),
])
def test_parse_window_is_the_one_parser(window, expected):
    from medmo.imaging import parse_window

    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            parse_window(window)
    else:
        assert parse_window(window) == expected


def test_window_to_uint8_matches_the_plain_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 500, (64, 64)).astype(np.float64)
    a[0, :3] = (np.nan, np.inf, -np.inf)
    for window in (None, (40.0, 400.0), (-600.0, 1500.0)):
        f = a.astype(np.float32)
        if window is None:
            fin = f[np.isfinite(f)]
            lo, hi = float(fin.min()), float(fin.max())
        else:
            lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
        ref = np.clip((np.nan_to_num(f, nan=lo) - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
        assert np.array_equal(window_to_uint8(a, window), ref)
    assert window_to_uint8(np.full((3, 3), np.nan)).tolist() == [[0] * 3] * 3
    before = a.copy()
    window_to_uint8(a.astype(np.float32))
    assert np.array_equal(a, before, equal_nan=True)  # the caller's array is untouched


def _phi_dicom() -> bytes:
    """CT_small whose patient tags, a malformed UID and a private tag carry identifiers."""
    from pydicom import config

    modes = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        ds = pydicom.dcmread(dcm("CT_small.dcm"))
        ds.PatientName, ds.PatientID = "Qzxvbn^Wlkjhg", "MRN-5550193"
        ds.StudyInstanceUID = "MRN5550193.Qzxvbn"  # a UID that breaks its VR
        ds.add_new("OtherPatientIDs", "LO", "Wlkjhg-5550193-" + "X" * 60)  # over LO's 64 characters
        ds.add_new(0x00091001, "LO", "Qzxvbn private")
        seq = pydicom.Dataset()
        seq.ReferencedSOPInstanceUID = "MRN5550193^Qzxvbn"
        ds.add_new("ReferencedImageSequence", "SQ", pydicom.Sequence([seq]))
        buf = io.BytesIO()
        ds.save_as(buf)
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes
    return buf.getvalue()


def test_reading_dicom_logs_and_warns_no_patient_value(caplog, recwarn):
    import logging

    from medmo.imaging import decode

    data = _phi_dicom()
    with caplog.at_level(logging.DEBUG):
        out = decode(data)
        no_pixels = pydicom.dcmread(io.BytesIO(data))
        del no_pixels.PixelData
        buf = io.BytesIO()
        no_pixels.save_as(buf)
        with pytest.raises(ValueError) as e:
            open_image(buf.getvalue())
    assert out.image.size == (128, 128) and out.info["Modality"] == "CT"
    texts = [caplog.text, str(e.value), json_dump(out.info)] + [str(w.message) for w in recwarn]
    for text in texts:
        for secret in ("Qzxvbn", "Wlkjhg", "5550193"):
            assert secret not in text, text


def json_dump(obj) -> str:
    import json

    return json.dumps(obj, default=str)


def test_deidentify_never_decodes_a_value():
    from medmo.imaging.dicom import patient_values

    ds = pydicom.dcmread(io.BytesIO(_phi_dicom()))
    secrets = patient_values(ds)
    assert "Qzxvbn" in secrets and "MRN-5550193" in secrets and "MRN5550193.Qzxvbn" in secrets
    deidentify(ds)
    assert "PatientName" not in ds and "StudyInstanceUID" not in ds and not any(e.tag.is_private for e in ds)
    assert all(e.keyword not in PATIENT_TAGS for e in ds.iterall())


def test_pydicom_log_records_are_scrubbed(caplog):
    import logging

    from medmo.imaging.dicom import quiet_pydicom, scrub

    assert scrub("Invalid value for VR UI: 'MRN123^Doe'. Please see ...") == "Invalid value for VR UI: '…'. Please see ..."
    quiet_pydicom()
    with caplog.at_level(logging.DEBUG, logger="pydicom"):
        logging.getLogger("pydicom").warning("Value %r for tag", "Doe^Jane")
        logging.getLogger("pydicom.pixels.utils").warning("decoding 'Doe^Jane' failed")
    assert "Doe" not in caplog.text and "…" in caplog.text
