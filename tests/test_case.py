"""`fundtrace case`: the offline HTML case report (checked in real headless Chromium) and GraphML."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib

import networkx as nx
import pytest

from fundtrace.export.case import COLOURS
from test_query import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("caseworld"))


def test_html_is_self_contained_and_highlights_freezes(cli, world, tmp_path):
    out = tmp_path / "c1.html"
    r = cli(f"case c1 --out {out}", db_path=world)
    assert r.code == 0, r.err
    assert "5 accounts, 4 payments, 2 to freeze (lifo)" in r.err
    page = out.read_text(encoding="utf-8")
    # nothing to fetch: no scripts, no external references (the SVG namespace is a name, not a fetch)
    assert "<script" not in page and " src=" not in page and "@import" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    assert re.findall(r"url\(([^)]*)\)", page) == ["#arrow"] * 4
    assert "default-src 'none'" in page
    # the graph: five accounts, the two listed ones highlighted with their amounts
    nodes = re.findall(r'<g class="node (\w+)"><title>([^<]+)</title>', page)
    assert sorted(nodes) == sorted([("victim", "A:V1"), ("holds", "A:M1"), ("freeze", "B:M2"), ("freeze", "A:M3"),
                                    ("cash_out", "B:ATM1")])  # fmt: skip
    assert "FREEZE 350.00" in page and "FREEZE 70.00" in page
    assert "1,000.00 · 01-01 09:00" in page  # an edge label: amount and time
    # timeline, freeze rows and evidence
    assert "Timeline of the money" in page and "t4" in page and "cash out" in page
    assert "HOLDS_VICTIM_FUNDS 0.600" in page and "FR-1" in page
    assert "A1" in page and "chain V1&gt;M1&gt;M2&gt;M3" in page  # escaped


def test_unknown_case_is_exit_2(cli, world, tmp_path):
    r = cli(f"case nope --out {tmp_path / 'x.html'}", db_path=world)
    assert r.code == 2 and "no reported case 'nope'" in r.err


def test_graphml_reads_back_with_the_same_nodes_and_edges(cli, world, tmp_path):
    out = tmp_path / "c1.graphml"
    r = cli(f"case c1 --out {out} --format graphml", db_path=world)
    assert r.code == 0, r.err
    g = nx.read_graphml(out, force_multigraph=True)
    assert set(g.nodes) == {"A:V1", "A:M1", "B:M2", "A:M3", "B:ATM1"}
    edges = sorted((u, v, d["txn_id"], d["amount"]) for u, v, d in g.edges(data=True))
    assert edges == [("A:M1", "B:M2", "t2", 900.0), ("A:V1", "A:M1", "t1", 1000.0), ("B:M2", "A:M3", "t4", 450.0),
                     ("B:M2", "B:ATM1", "t3", 400.0)]  # fmt: skip
    assert g.nodes["A:M3"]["to_freeze"] == 350.0 and g.nodes["B:M2"]["level"] == 2
    assert g.nodes["B:ATM1"]["role"] == "cash_out" and g.nodes["A:V1"]["role"] == "victim"


# --- the real browser ---------------------------------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, int, list[bytearray]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG into rows of bytes (no imaging library needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_case_report_renders_the_graph_in_headless_chromium_offline(cli, world, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs the Debian package)")
        pytest.skip("chromium is not installed here; `apt-get install chromium` (CI installs it and fails without)")
    page = tmp_path / "c1.html"
    assert cli(f"case c1 --out {page}", db_path=world).code == 0
    shot = tmp_path / "shot.png"
    args = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # and no network at all below
        f"--screenshot={shot}", "--window-size=1200,700", page.as_uri(),
    ]  # fmt: skip
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        args = ["unshare", "--net", *args]  # a network namespace with no interfaces but loopback (down)
    done = subprocess.run(args, capture_output=True, timeout=120, text=True)
    assert shot.exists(), done.stderr[-2000:]
    width, height, bpp, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 700)
    # the graph sits under the title and the legend: count its pixels by colour
    counts = {name: 0 for name in COLOURS}
    ink = 0
    wanted = {name: _hex(fill) for name, (fill, _) in COLOURS.items() if name != "account"}
    for y in range(90, 450):
        line = rows[y]
        for x in range(0, width * bpp, bpp):
            px = (line[x], line[x + 1], line[x + 2])
            for name, rgb in wanted.items():
                if px == rgb:
                    counts[name] += 1
            if sum(px) < 300:
                ink += 1
    # filled boxes: the victim, one holding account, two to freeze, the cash-out; dark edges and text
    assert counts["victim"] > 2000 and counts["holds"] > 2000 and counts["cash_out"] > 2000, counts
    assert counts["freeze"] > 2 * 2000, counts
    assert ink > 1500, ink
