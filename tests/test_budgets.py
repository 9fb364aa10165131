"""Decoding budgets under hostile input (issue 12): the bombs are built here (small on disk),
refused on their headers with a 413 that names the budget and the flag that raises it, the
server's peak RSS stays bounded, and no patient value reaches any log or stderr.

The server-side checks run in a subprocess (this file run as a script, by hand too:
`python tests/test_budgets.py build-bombs DIR` then `... serve-probe MODEL DIR`), so its
peak RSS (VmHWM, reset before each probe through /proc/self/clear_refs) and its stderr
(logging at DEBUG plus Python warnings) are its own. The bombs, as in the issue:
- a 290 KB .nii.gz of zeros declaring 2000x1500x100 voxels (was +3.4 GB, 27 s);
- eight 6000x6600 PNGs in one chat, each under the per-image cap (was +3 GB);
- a 400 KB deflated DICOM inflating to 400 MB (pydicom inflated it whole, twice);
- a multi-frame DICOM declaring 1024x1024x200 frames; a NIfTI whose voxel sizes (1 mm x
  100 m) would be resampled into a 10^8-pixel image; float64 voxels past the inflate cap.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------ bombs
def deflate_zeros(head: bytes, zeros: int, tail: bytes = b"", block: int = 1 << 22) -> bytes:
    """Raw deflate of head + `zeros` zero bytes + tail; one block of zeros is compressed once and
    repeated (a full flush resets the window, so every later block compresses identically)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(head), c.flush(zlib.Z_FULL_FLUSH)]
    n, rest = divmod(zeros, block)
    if n:
        out.append(c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH))
    if n > 1:
        out += [c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)] * (n - 1)
    out += [c.compress(bytes(rest) + tail), c.flush()]
    return b"".join(out)


def gzip_zeros(head: bytes, zeros: int) -> bytes:
    crc, block = zlib.crc32(head), bytes(1 << 22)
    n, rest = divmod(zeros, len(block))
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(rest), crc)
    trailer = struct.pack("<II", crc, (len(head) + zeros) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflate_zeros(head, zeros) + trailer


def nifti_gz(shape, dtype=np.uint8, zooms=None) -> bytes:
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    if zooms:
        hdr.set_zooms(zooms)
    hdr.set_data_offset(352)
    return gzip_zeros(hdr.binaryblock + b"\0" * 4, int(np.prod(shape)) * np.dtype(dtype).itemsize)


def png_zeros(width: int, height: int) -> bytes:
    """An RGB PNG of zeros: `width` x `height` pixels in a few hundred KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    n = (1 + 3 * width) * height  # per row: filter byte 0, then RGB zeros
    a, b = 1, n % 65521  # adler32 of n zero bytes
    zdata = b"\x78\xda" + deflate_zeros(b"", n) + struct.pack(">I", (b << 16) | a)  # zlib wrapper
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zdata) + chunk(b"IEND", b""))


def _dataset(rows: int, cols: int, **extra):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "OT", rows, cols, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "MONOCHROME2", 8, 8, 7
    ds.PixelRepresentation = 0
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def _part10(ds, syntax: str, body: bytes | None = None) -> bytes:
    """Preamble + file meta (`syntax`) + `body` (default: `ds` in explicit VR little endian)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = syntax
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta)
    if body is None:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_dataset(fp, ds)
        body = fp.getvalue()
    return out.getvalue() + body


def deflated_dicom(inflated: int, rows: int = 16, cols: int = 16) -> bytes:
    """A 16x16 image behind a private OB element of `inflated` zero bytes, deflated."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, _dataset(rows, cols))
    private = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 6) + b"MEDMO " + struct.pack("<HH2sHI", 0x0009, 0x1010,
                                                                                         b"OB", 0, inflated)
    pixels = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, rows * cols) + bytes(rows * cols)
    return _part10(_dataset(rows, cols), "1.2.840.10008.1.2.1.99", deflate_zeros(fp.getvalue() + private, inflated,
                                                                               pixels))


def multiframe_dicom(rows: int, cols: int, frames: int) -> bytes:
    """Declares rows x cols x frames; carries 1 KB of pixel data (it is refused before any is read)."""
    ds = _dataset(rows, cols, NumberOfFrames=frames)
    ds.PixelData = bytes(1024)
    return _part10(ds, "1.2.840.10008.1.2.1")


PHI = {"PatientName": "Qzxvbn^Wlkjhg", "PatientID": "MRN-5550193", "PatientBirthDate": "19450317",
       "InstitutionName": "St Qzxvbn Hospital"}
SECRETS = ("Qzxvbn", "Wlkjhg", "5550193", "19450317")  # every identifier below contains one of these


def phi_dicom(pixels: bool = True) -> bytes:
    """CT_small with identifiers in patient tags, in a malformed UID (patient and non-patient
    tag), in an over-long LO and in a private tag: each breaks its VR so pydicom's
    validation would quote it."""
    import pydicom
    from pydicom import config
    from pydicom.data import get_testdata_file

    modes = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:  # (this process's own pydicom would otherwise warn, quoting the values, while they are set)
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        for key, value in PHI.items():
            setattr(ds, key, value)
        ds.StudyInstanceUID = "MRN5550193.Qzxvbn"
        ds.add_new("OtherPatientIDs", "LO", "Wlkjhg-5550193-" + "X" * 60)
        ds.add_new("StorageMediaFileSetUID", "UI", "MRN5550193^Qzxvbn")  # not a patient tag: kept, never logged
        ds.add_new(0x00091001, "LO", "Qzxvbn private")
        if not pixels:
            del ds.PixelData
        buf = io.BytesIO()
        ds.save_as(buf)
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes
    return buf.getvalue()


def assert_no_phi(*texts: str) -> None:
    for text in texts:
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"patient values {leaked} in:\n{text[-3000:]}"


# ------------------------------------------------------------------------------ in-process
def test_budget_messages_name_the_budget_and_how_to_raise_it():
    from medmo.imaging import Budget, Limits, OverBudget

    b = Budget(Limits(max_image_pixels=100, max_request_pixels=150, raise_with="use --{flag} ({field})"))
    b.image(10, 10, "a.png")
    with pytest.raises(OverBudget, match=r"b.png: a 11x10 image has 110 pixels, over the cap of 100 pixels "
                                         r"\(max_image_pixels\); use --max-image-pixels \(max_image_pixels\)") as e:
        b.image(11, 10, "b.png")
    assert (e.value.budget, e.value.limit, e.value.needed) == ("max_image_pixels", 100, 110)
    with pytest.raises(OverBudget, match="request's images have 200 pixels.*max_request_pixels"):
        b.image(10, 10, "c.png")
    assert b.pixels == 100  # a refused image is not charged
    Budget(Limits(None, None, None, None)).image(10**6, 10**6, "huge")  # None: no limit


def test_inflate_stops_where_it_is_told():
    import gzip

    from medmo.imaging.limits import inflate, inflated_size

    a, b = os.urandom(100_000), b"x" * 300_000
    two_members = gzip.compress(a) + gzip.compress(b)  # gzip allows several members; .nii.gz writers rarely
    assert inflate(two_members, 10**7, wbits=31, what="t") == a + b
    assert inflate(two_members, 150_000, wbits=31, what="t") == (a + b)[:150_000]
    bomb = deflate_zeros(b"", 1 << 30)  # 1 GB of zeros in 1 MB
    assert len(bomb) < 1_100_000
    assert (256 << 20) < inflated_size(bomb, 256 << 20, wbits=-15, what="t") <= (257 << 20)  # stops just past
    with pytest.raises(ValueError, match="t: corrupt deflate stream"):
        inflated_size(b"\xff" * 64, 100, wbits=-15, what="t")


@pytest.mark.parametrize("what,data,budget", [
    ("2000x1500x100 .nii.gz", lambda: nifti_gz((2000, 1500, 100)), "max_volume_voxels"),
    ("float64 volume past the inflate cap", lambda: nifti_gz((512, 512, 192), np.float64), "max_decompressed_bytes"),
    ("1 mm x 100 m voxels", lambda: nifti_gz((100, 100, 1), zooms=(1.0, 100_000.0, 1.0)), "max_image_pixels"),
    ("deflated DICOM inflating to 400 MB", lambda: deflated_dicom(400 << 20), "max_decompressed_bytes"),
    ("1024x1024x200 multi-frame DICOM", lambda: multiframe_dicom(1024, 1024, 200), "max_volume_voxels"),
    ("a 40 MP-cap-busting PNG", lambda: png_zeros(8000, 6000), "max_image_pixels"),
])
def test_bombs_are_refused_on_their_headers(what, data, budget):
    """Each refusal costs a few MB of Python/numpy allocations (tracemalloc), not the bomb's size."""
    import tracemalloc

    from medmo.imaging import Budget, OverBudget, open_image

    blob = data()
    assert len(blob) < 1_000_000, len(blob)  # small on disk
    tracemalloc.start()
    try:
        with pytest.raises(OverBudget) as e:
            open_image(blob, budget=Budget())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.budget == budget and budget in str(e.value) and "raise it" in str(e.value)
    assert peak < 20 << 20, f"{what}: {peak / 2**20:.0f} MB allocated to refuse it"


def test_request_budget_spans_all_images_of_a_request():
    from medmo.imaging import Budget, OverBudget, open_image

    png = png_zeros(6000, 6600)  # 39.6 MP: under the 40 MP per-image cap
    budget = Budget()  # 80 MP per request: two fit, the third does not
    assert open_image(png, budget=budget).size == (6000, 6600)
    open_image(png, budget=budget)
    with pytest.raises(OverBudget, match="with this 6000x6600 image the request's images have 118800000 pixels"):
        open_image(png, budget=budget)


def test_within_budget_everything_still_opens():
    import nibabel
    import pydicom
    from pydicom.data import get_testdata_file

    from medmo.imaging import Budget, Limits, open_image

    dfl = get_testdata_file("image_dfl.dcm")  # a real deflated DICOM, 512x512
    assert np.array_equal(np.asarray(open_image(dfl, budget=Budget()))[..., 0],
                          np.asarray(open_image(dfl))[..., 0])
    assert open_image(dfl, budget=Budget()).size == (pydicom.dcmread(dfl).Columns, pydicom.dcmread(dfl).Rows)
    nii = Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz"  # 128x96x24x2
    open_image(nii, budget=Budget(Limits(max_volume_voxels=128 * 96 * 24 * 2)))
    with pytest.raises(ValueError, match="128x96x24x2 NIfTI volume has 589824 voxels"):
        open_image(nii, budget=Budget(Limits(max_volume_voxels=128 * 96 * 24 * 2 - 1)))
    open_image(nii, montage=9, budget=Budget(Limits(max_request_pixels=9 * 128 * 96)))
    with pytest.raises(ValueError, match="max_request_pixels"):
        open_image(nii, montage=9, budget=Budget(Limits(max_request_pixels=9 * 128 * 96 - 1)))


def test_series_folder_voxels_are_checked_before_any_slice_is_decoded(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    from medmo.imaging import Budget, Limits, open_image

    folder = tmp_path / "series"
    folder.mkdir()
    for z in range(4):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 5.0 * z], [1, 0, 0, 0, 1, 0]
        ds.save_as(folder / f"{z}.dcm")
    open_image(folder, budget=Budget(Limits(max_volume_voxels=4 * 128 * 128)))
    with pytest.raises(ValueError, match="series of 4 files has 65536 voxels.*max_volume_voxels"):
        open_image(folder, budget=Budget(Limits(max_volume_voxels=4 * 128 * 128 - 1)))


def test_serve_infer_and_cli_share_the_default_budgets():
    from medmo.cli import build_parser
    from medmo.imaging import Limits
    from medmo.infer import BUDGETS, InferConfig
    from medmo.serve.api import ServeConfig

    defaults = Limits()
    serve, infer = ServeConfig(model="m"), InferConfig(model="m", image="i", prompt="q")
    for args in (["serve", "--model", "m"], ["infer", "--model", "m", "--image", "i"]):
        parsed = build_parser().parse_args(args)
        for name in BUDGETS:
            assert getattr(parsed, name) == getattr(defaults, name) == getattr(serve, name) == getattr(infer, name)


# ------------------------------------------------------------------------------ the server
def _probe_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"nifti_bomb.nii.gz": nifti_gz((2000, 1500, 100)), "nifti_f64.nii.gz": nifti_gz((512, 512, 192), np.float64),
             "nifti_zooms.nii.gz": nifti_gz((100, 100, 1), zooms=(1.0, 100_000.0, 1.0)),
             "deflated.dcm": deflated_dicom(400 << 20), "multiframe.dcm": multiframe_dicom(1024, 1024, 200),
             "ct_ok.nii.gz": nifti_gz((512, 512, 256), np.int16), "big.png": png_zeros(6000, 6600), "junk.png": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 32,
             "phi.dcm": phi_dicom(), "phi_nopixels.dcm": phi_dicom(pixels=False),
             "phi_truncated.dcm": phi_dicom()[:-5000]}
    for name, data in files.items():
        (folder / name).write_bytes(data)


PROBES = [  # (name, endpoint, what the body holds, expected status, budget named in the message)
    ("nifti_bomb", "/v1/preview", "nifti_bomb.nii.gz", 413, "max_volume_voxels"),
    ("nifti_f64", "/v1/vqa", "nifti_f64.nii.gz", 413, "max_decompressed_bytes"),
    ("nifti_zooms", "/v1/preview", "nifti_zooms.nii.gz", 413, "max_image_pixels"),
    ("deflated_dicom", "/v1/ground", "deflated.dcm", 413, "max_decompressed_bytes"),
    ("multiframe_dicom", "/v1/report", "multiframe.dcm", 413, "max_volume_voxels"),
    ("eight_pngs", "/v1/chat/completions", "big.png", 413, "max_request_pixels"),
    ("gzip_junk", "/v1/vqa", "junk.png", 400, "corrupt gzip stream"),
    ("ct_volume_ok", "/v1/preview", "ct_ok.nii.gz", 200, ""),  # 512x512x256 int16: within every budget
    ("phi_preview", "/v1/preview", "phi.dcm", 200, ""),
    ("phi_vqa", "/v1/vqa", "phi.dcm", 200, ""),
    ("phi_nopixels", "/v1/vqa", "phi_nopixels.dcm", 400, "no pixel data"),
    ("phi_truncated", "/v1/vqa", "phi_truncated.dcm", 400, "image"),
]


def serve_probe(model: str, folder: str) -> None:
    """(subprocess) Each probe against a fresh-peak server; prints one JSON object on stdout."""
    import logging

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from fastapi.testclient import TestClient

    from medmo.serve.api import ServeConfig, create_app

    def url(name: str) -> str:
        return "data:application/octet-stream;base64," + base64.b64encode((Path(folder) / name).read_bytes()).decode()

    def body(endpoint: str, name: str) -> dict:
        if endpoint == "/v1/chat/completions":
            return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url(name)}}
                                                              for _ in range(8)] + [{"type": "text", "text": "?"}]}]}
        return {"image": url(name), "question": "What is shown?", "target": "lesion"}

    def rss_mb(field: str) -> float:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+)", text, re.M).group(1)) / 1024

    def reset_peak() -> float:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        except OSError:
            pass
        return rss_mb("VmRSS")

    small = {"image": url("phi.dcm"), "question": "q"}
    out = {}
    with TestClient(create_app(ServeConfig(model=model, max_new_tokens=2))) as client:
        for _ in range(2):  # warm-up: first-call allocations are not the probes'
            assert client.post("/v1/vqa", json=small).status_code == 200
        for name, endpoint, file, _, _ in PROBES:
            data = body(endpoint, file)
            before = reset_peak()
            r = client.post(endpoint, json=data)
            grew = max(0.0, rss_mb("VmHWM") - before)
            out[name] = {"status": r.status_code, "text": r.text[:2000], "growth_mb": round(grew, 1)}
        out["after"] = client.post("/v1/vqa", json=small).status_code
    print(json.dumps(out))


@pytest.fixture(scope="module")
def probe(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    _probe_files(folder)
    run = subprocess.run([sys.executable, __file__, "serve-probe", str(tiny_dir), str(folder)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-5000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stderr


# peak RSS growth each probe may cost the server (MB); the issue measured +3,400 (NIfTI), +3,000
# (PNGs) and +400 (a 200 KB deflated DICOM) before these budgets
RSS_BOUND_MB = {"eight_pngs": 600,  # two 6000x6600 RGB images (119 MB each) decode before the third is refused
                "ct_volume_ok": 450}  # 128 MB of int16 voxels inflated, one copy for the percentiles
DEFAULT_BOUND_MB = 150


@pytest.mark.slow  # the server in a subprocess (~15 s on 2 idle cores)
def test_server_refuses_the_bombs_with_bounded_memory(probe):
    results, _ = probe
    for name, _, _, status, words in PROBES:
        r = results[name]
        assert r["status"] == status, (name, r)
        assert words in r["text"], (name, r["text"])
        if status == 413:
            assert f"--{words.replace('_', '-')} N" in r["text"], r["text"]  # how to raise it
            assert json.loads(r["text"])["error"]["code"] == 413
        assert r["growth_mb"] < RSS_BOUND_MB.get(name, DEFAULT_BOUND_MB), (name, r["growth_mb"])
    assert results["after"] == 200  # and it keeps serving


@pytest.mark.slow
def test_no_patient_values_in_server_logs_or_responses(probe):
    results, stderr = probe
    assert "413: " in stderr and "DEBUG" in stderr  # it really is the server's log, at its most verbose
    assert_no_phi(stderr, *(r["text"] for r in results.values() if isinstance(r, dict)))


# ------------------------------------------------------------------------------ infer and convert
def _medmo(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # every warning shown, as a user's shell may
    return subprocess.run([sys.executable, "-m", "medmo", "-v", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.mark.slow  # two `medmo infer` processes, one loading the model
def test_no_patient_values_in_infer_output(tiny_dir, tmp_path):
    (tmp_path / "phi.dcm").write_bytes(phi_dicom())
    (tmp_path / "phi_nopixels.dcm").write_bytes(phi_dicom(pixels=False))
    ok = _medmo("infer", "--model", str(tiny_dir), "--image", str(tmp_path / "phi.dcm"), "--prompt", "q",
                "--max-new-tokens", "2", "--json")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads(ok.stdout)["image_size"] == [128, 128]
    bad = _medmo("infer", "--model", str(tiny_dir), "--image", str(tmp_path / "phi_nopixels.dcm"), "--prompt", "q")
    assert bad.returncode == 2 and "no pixel data" in bad.stderr
    assert_no_phi(ok.stdout, ok.stderr, bad.stdout, bad.stderr)


def test_no_patient_values_in_convert_log_or_output(tmp_path):
    raw = tmp_path / "vqa_rad"
    (raw / "images").mkdir(parents=True)
    (raw / "images" / "phi.dcm").write_bytes(phi_dicom())
    (raw / "images" / "phi_nopixels.dcm").write_bytes(phi_dicom(pixels=False))
    rows = [{"qid": i, "image_name": name, "question": "Is there a nodule?", "answer": "no", "answer_type": "CLOSED"}
            for i, name in enumerate(["phi.dcm", "phi_nopixels.dcm"])]
    (raw / "testset.json").write_text(json.dumps(rows))
    out = tmp_path / "out"
    run = _medmo("data", "convert", "vqa_rad", "--raw", str(raw), "--out", str(out), "--check-images", "decode")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 1  # the image without pixel data is dropped as unreadable
    written = [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert_no_phi(run.stdout, run.stderr, *written)


if __name__ == "__main__":  # python tests/test_budgets.py build-bombs DIR; ... serve-probe MODEL DIR
    if sys.argv[1:2] == ["build-bombs"]:
        _probe_files(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["serve-probe"]:
        serve_probe(*sys.argv[2:4])
    else:
        sys.exit("usage: test_budgets.py build-bombs DIR | serve-probe MODEL DIR")


def test_header_size_reads_sizes_without_inflating_a_bomb_or_leaking_tags(tmp_path, caplog):
    """Converters and `medmo data stats` read DICOM sizes of many files through one header reader."""
    from medmo.data.stats import image_size
    from medmo.imaging.dicom import header_size

    plain = tmp_path / "plain.dcm"
    plain.write_bytes(multiframe_dicom(24, 40, 1))
    assert header_size(plain) == (40, 24) and image_size(plain) == (40, 24)
    small = tmp_path / "small_deflated.dcm"
    small.write_bytes(deflated_dicom(1 << 16, rows=12, cols=20))
    assert header_size(small) == (20, 12)  # a deflated file within the budget is read
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(deflated_dicom(400 << 20))
    with pytest.raises(ValueError, match="max_decompressed_bytes"):
        header_size(bomb)
    assert image_size(bomb) is None  # stats counts it as unreadable
    phi = tmp_path / "phi.dcm"
    phi.write_bytes(phi_dicom())
    with caplog.at_level("DEBUG"):
        header_size(phi)
    assert_no_phi(caplog.text)
