#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/), deterministically.

    .venv/bin/python tests/fuzz/make_corpus.py

image_decode/: small valid JPEG, PNG, WebP and BMP files (RGB, gray, RGBA, palette, 16-bit PNG,
an EXIF-rotated JPEG), hostile ones (truncated, a 100000x100000 decompression bomb header in
each format, zero sides, GIF and TIFF magic, garbage) and raw-path inputs (5 bytes of signed
16-bit width, height and a format byte, then the pixels; see image_decode_fuzzer.cc).
embed_request/: serialized dinov3.v1.EmbedRequest messages: valid encoded and raw requests,
too many images, bad enum values, huge dimensions, no images, an image without a source.
http_request/: OpenAI /v1/embeddings and Open Inference Protocol REST infer bodies (JSON and the
binary extension), valid and hostile (see http_request_files).
Every file stays a few KiB at most. The outputs are committed; rerun after changing this script.
Needs numpy, Pillow and grpcio-tools (all in requirements.txt).
"""
import io
import pathlib
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
MAX_FILE_BYTES = 8 << 10


def pattern(width, height, channels):
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * 7 + y * 3) % 256, (y * 11) % 256, (x + 3 * y) % 256, (x * y) % 256]
    return np.stack(planes[:channels], axis=-1).astype(np.uint8).squeeze()


def encode(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width, height, depth=8, color=2):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)


def png_bomb():
    # 100000x100000 gray, and a little deflate data that would expand enormously.
    data = zlib.compress(b"\0" * 20000, 9)
    return png_header(100000, 100000, 8, 0) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def jpeg_with_size(valid_jpeg, width, height):
    # Rewrites the frame size of the first SOF0/SOF2 of a valid JPEG.
    data = bytearray(valid_jpeg)
    pos = 2
    while pos + 4 <= len(data):
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC2):
            data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        pos += 2 + length
    raise ValueError("no SOF marker")


def bmp_header(width, height, bpp=24):
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def webp_vp8l_header(width, height):
    bits = (width - 1) | (height - 1) << 14
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 16
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_vp8x_header(width, height):
    payload = b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def exif_orientation(value):
    # Minimal little-endian TIFF IFD with one Orientation (0x0112) entry.
    ifd = struct.pack("<HHHIHH", 1, 0x0112, 3, 1, value, 0) + struct.pack("<I", 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd


def raw_input(width, height, fmt, data):
    return struct.pack("<hhB", width, height, fmt) + data


def image_files():
    rgb = Image.fromarray(pattern(24, 16, 3), "RGB")
    gray = Image.fromarray(pattern(16, 16, 1), "L")
    rgba = Image.fromarray(pattern(16, 12, 4), "RGBA")
    jpeg = encode(rgb, "JPEG", quality=80)
    png = encode(rgb, "PNG")
    files = {
        "jpeg_rgb.jpg": jpeg,
        "jpeg_gray.jpg": encode(gray, "JPEG", quality=80),
        "jpeg_progressive.jpg": encode(rgb, "JPEG", quality=70, progressive=True),
        "jpeg_exif_rotated.jpg": encode(rgb, "JPEG", quality=80, exif=exif_orientation(6)),
        "png_rgb.png": png,
        "png_gray.png": encode(gray, "PNG"),
        "png_rgba.png": encode(rgba, "PNG"),
        "png_palette.png": encode(rgb.convert("P"), "PNG"),
        "png_16bit.png": encode(Image.fromarray(pattern(16, 16, 1).astype(np.uint16) * 257),
                                "PNG"),
        "png_elongated.png": encode(Image.new("L", (2000, 8), 128), "PNG"),
        "webp_lossy.webp": encode(rgb, "WEBP", quality=70),
        "webp_lossless.webp": encode(rgba, "WEBP", lossless=True),
        "bmp_rgb.bmp": encode(rgb, "BMP"),
        "bmp_gray.bmp": encode(gray, "BMP"),
        "small_7x7.png": encode(Image.fromarray(pattern(7, 7, 3), "RGB"), "PNG"),
        # Hostile: decompression bombs (headers claiming 100000x100000), zero sides, truncation.
        "bomb_png.png": png_bomb(),
        "bomb_jpeg.jpg": jpeg_with_size(jpeg, 100000 % 65536, 65535),
        "bomb_bmp.bmp": bmp_header(100000, 100000),
        "bomb_bmp_topdown.bmp": bmp_header(100000, -100000),
        "bomb_webp_vp8l.webp": webp_vp8l_header(16384, 16384),
        "bomb_webp_vp8x.webp": webp_vp8x_header(100000, 100000),
        "zero_width.png": png_header(0, 16),
        "zero_height.jpg": jpeg_with_size(jpeg, 24, 0),
        "zero_bmp.bmp": bmp_header(0, 0),
        "truncated_jpeg.jpg": jpeg[: len(jpeg) // 2],
        "truncated_png.png": png[: len(png) // 2],
        "truncated_header.png": png[:20],
        "jpeg_soi_only.jpg": b"\xff\xd8\xff",
        "gif_magic.gif": encode(rgb.convert("P"), "GIF"),
        "tiff_magic.tif": encode(rgb, "TIFF"),
        "tiff_be_magic.tif": b"MM\0*" + b"\0" * 12,
        "garbage.bin": bytes(range(256)) * 2,
        "empty.bin": b"",
        # Raw path: valid inputs per format, a wrong length, negative and too small sides.
        "raw_rgb8": raw_input(8, 8, 0, pattern(8, 8, 3).tobytes()),
        "raw_bgr8": raw_input(9, 8, 1, pattern(9, 8, 3).tobytes()),
        "raw_gray8": raw_input(8, 10, 2, pattern(8, 10, 1).tobytes()),
        "raw_rgba8": raw_input(12, 8, 3, pattern(12, 8, 4).tobytes()),
        "raw_wrong_length": raw_input(8, 8, 0, b"\x01" * 100),
        "raw_negative": raw_input(-8, 8, 0, b""),
        "raw_huge": raw_input(32767, 32767, 0, b"\0" * 16),
    }
    return files


def load_proto_module():
    """dinov3.v1's Python message classes, generated from proto/ into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="dinov3_fuzz_proto_") as out:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
                        f"--python_out={out}", "dinov3/v1/embedding.proto"], check=True)
        sys.path.insert(0, out)
        try:
            from dinov3.v1 import embedding_pb2  # pylint: disable=import-outside-toplevel
        finally:
            sys.path.remove(out)
    return embedding_pb2


def request_files(images):
    pb = load_proto_module()

    def request(*image_list, **fields):
        req = pb.EmbedRequest(**fields)
        for i, img in enumerate(image_list):
            req.images.append(img if img.id else pb.Image(id=f"img{i}", **{
                f: getattr(img, f) for f in ("encoded", "raw") if img.HasField(f)}))
        return req.SerializeToString()

    def raw(width, height, fmt, data):
        return pb.Image(raw=pb.RawImage(width=width, height=height, format=fmt, data=data))

    enc = lambda name: pb.Image(encoded=images[name])  # noqa: E731
    rgb8 = raw(8, 8, pb.RGB8, pattern(8, 8, 3).tobytes())
    pre = pb.Preprocess
    photo = encode(Image.fromarray(pattern(8, 6, 3), "RGB").resize((480, 456), Image.BILINEAR),
                   "JPEG", quality=60)
    files = {
        "valid_encoded_jpeg": request(enc("jpeg_rgb.jpg")),
        "valid_encoded_png_webp_bmp": request(enc("png_rgba.png"), enc("webp_lossy.webp"),
                                              enc("bmp_gray.bmp"), outputs=[pb.CLS, pb.POOLED]),
        "valid_raw_rgb8": request(rgb8, dtype=pb.FLOAT16, l2_normalize=True, request_id="r1"),
        "valid_raw_gray8_rgba8": request(raw(8, 9, pb.GRAY8, pattern(8, 9, 1).tobytes()),
                                         raw(10, 8, pb.RGBA8, pattern(10, 8, 4).tobytes())),
        "valid_center_crop": request(enc("jpeg_exif_rotated.jpg"), outputs=[pb.PATCH_TOKENS],
                                     preprocess=pre(mode=pb.RESIZE_SHORTER_SIDE_CENTER_CROP,
                                                    height=224)),
        "valid_keep_aspect": request(enc("png_16bit.png"), outputs=[pb.REGISTERS, pb.CLS],
                                     priority=pb.PRIORITY_HIGH,
                                     preprocess=pre(mode=pb.RESIZE_KEEP_ASPECT, height=448,
                                                    max_patches=256)),
        "valid_fixed_size": request(rgb8, preprocess=pre(mode=pb.RESIZE_FIXED, height=320,
                                                         width=160)),
        "too_many_images": request(*[rgb8] * 9),
        "no_images": request(),
        "image_without_source": pb.EmbedRequest(images=[pb.Image(id="x")]).SerializeToString(),
        "bad_output_enum": request(rgb8, outputs=[pb.CLS, 9]),
        "unspecified_output": request(rgb8, outputs=[pb.OUTPUT_UNSPECIFIED]),
        "bad_dtype_enum": request(rgb8, dtype=7),
        "bad_priority_enum": request(rgb8, priority=5),
        "bad_resize_mode_enum": request(rgb8, preprocess=pre(mode=11)),
        "bad_pixel_format_enum": request(raw(8, 8, 9, b"\0" * 192)),
        "unspecified_pixel_format": request(raw(8, 8, pb.PIXEL_FORMAT_UNSPECIFIED, b"\0" * 64)),
        "huge_raw_dims": request(raw(4294967295, 4294967295, pb.RGB8, b"\0" * 16)),
        "raw_dims_above_max_pixels": request(raw(4096, 4096, pb.GRAY8, b"\0" * 16)),
        "raw_wrong_length": request(raw(8, 8, pb.RGB8, b"\0" * 10)),
        "huge_preprocess_dims": request(rgb8, preprocess=pre(height=4294967295, width=16384)),
        "huge_max_patches": request(rgb8, preprocess=pre(mode=pb.RESIZE_KEEP_ASPECT,
                                                         max_patches=4294967295)),
        "center_crop_width_mismatch": request(rgb8, preprocess=pre(
            mode=pb.RESIZE_SHORTER_SIDE_CENTER_CROP, height=224, width=112)),
        "fixed_not_patch_multiple": request(rgb8, preprocess=pre(height=225)),
        "elongated_center_crop": request(enc("png_elongated.png"),
                                         preprocess=pre(mode=pb.RESIZE_SHORTER_SIDE_CENTER_CROP,
                                                        height=1008)),
        "encoded_bomb": request(enc("bomb_png.png")),
        "encoded_gif": request(enc("gif_magic.gif")),
        "encoded_truncated": request(enc("truncated_jpeg.jpg")),
        "encoded_empty": request(pb.Image(encoded=b"", id="empty")),
        "bad_decode_enum": request(rgb8, preprocess=pre(decode=9)),
        # DECODE_FAST: a JPEG at least 2x the 224x224 target, so it decodes at reduced scale.
        "valid_fast_decode": request(pb.Image(encoded=photo),
                                     preprocess=pre(decode=pb.DECODE_FAST)),
        "fast_decode_truncated": request(pb.Image(encoded=photo[: len(photo) // 2]),
                                         preprocess=pre(decode=pb.DECODE_FAST)),
    }
    return files


def http_request_files(images):
    """Seeds of http_request_fuzzer: byte 0 even = an OpenAI /v1/embeddings body follows; odd =
    an Open Inference Protocol REST infer body follows byte 1, the Inference-Header-Content-Length
    (255 = none)."""
    import base64
    import json

    png = next(data for name, data in sorted(images.items()) if name.endswith(".png"))
    b64 = base64.b64encode(png).decode()

    def openai(body):
        return b"\x00" + (body if isinstance(body, bytes) else json.dumps(body).encode())

    def rest(body, binary=b""):
        header = json.dumps(body, separators=(",", ":")).encode()
        if not binary:
            return b"\x01\xff" + header
        assert len(header) < 255, len(header)
        return b"\x01" + bytes([len(header)]) + header + binary

    pixels = {"name": "PIXELS", "datatype": "UINT8", "shape": [1, 8, 8, 3], "data": [7] * 192}
    return {
        "openai_data_url": openai({"model": "", "input": [f"data:image/png;base64,{b64}"]}),
        "openai_bare_base64": openai({"input": b64, "encoding_format": "base64",
                                      "output": "pooled", "normalize": False}),
        "openai_http_url": openai({"input": ["http://example.com/a.jpg"]}),
        "openai_tokens": openai({"input": [[1, 2, 3]]}),
        "openai_dimensions": openai({"input": [b64], "dimensions": 8}),
        "openai_too_deep": openai(b'{"input": ' + b"[" * 20 + b"]" * 20 + b"}"),
        "openai_not_json": openai(b'{"input": [}'),
        "rest_pixels_json": rest({"inputs": [pixels], "outputs": [{"name": "CLS"}],
                                  "parameters": {"datatype": "FP16"}}),
        "rest_image_binary": rest({"inputs": [{"name": "IMAGE", "datatype": "BYTES",
                                               "shape": [1],
                                               "parameters": {"binary_data_size": len(png) + 4}}]},
                                  len(png).to_bytes(4, "little") + png),
        "rest_image_json_base64": rest({"inputs": [{"name": "IMAGE", "datatype": "BYTES",
                                                    "shape": [1], "data": [b64]}]}),
        "rest_past_the_end": rest({"inputs": [{"name": "IMAGE", "datatype": "BYTES",
                                               "shape": [1],
                                               "parameters": {"binary_data_size": 99}}]},
                                  b"\x05\x00\x00\x00abcde"),
        "rest_shape_mismatch": rest({"inputs": [dict(pixels, shape=[2, 8, 8, 3])]}),
    }


def write(directory, files):
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for name, data in sorted(files.items()):
        if len(data) > MAX_FILE_BYTES:
            raise SystemExit(f"{directory.name}/{name} is {len(data)} bytes, above {MAX_FILE_BYTES}")
        (directory / name).write_bytes(data)
    print(f"{directory.relative_to(ROOT)}: {len(files)} files, "
          f"{sum(len(d) for d in files.values())} bytes")


def main():
    images = image_files()
    write(CORPUS / "image_decode", images)
    write(CORPUS / "embed_request", request_files(images))
    write(CORPUS / "http_request", http_request_files(images))


if __name__ == "__main__":
    main()
