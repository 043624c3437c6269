"""A person's statement (社会保险个人权益记录单) as a PDF page in Chinese, with fpdf2 and the
Noto Sans CJK font of the distribution's fonts-noto-cjk package.

The CJK font is large (a collection of five faces, 20 MB, CFF outlines): parsing and
subsetting it for every statement costs a third of a second or more. ``FontCut`` instead cuts,
once per batch of statements, a small font of just the characters the batch uses (the page's
own text, the names, the places), with TrueType outlines, and every statement of the batch
embeds that (bench/statements.py measures both).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import UserError

SCHEME_NAMES = {"PENSION": "基本养老保险", "MEDICAL": "基本医疗保险", "WORK_INJURY": "工伤保险",
                "UNEMPLOYMENT": "失业保险", "MATERNITY": "生育保险"}
KNOWN_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
               "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
               "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc")
TITLE = "社会保险个人权益记录单"
HEADER = ("险种", "缴费月数", "单位缴费(元)", "个人缴费(元)", "记入个人账户(元)", "待遇支付(元)")
TRANSFER_HEADER = ("生效月份", "转出地", "转入地", "险种", "个人账户(元)", "统筹基金(元)")
NOTE = ("依据《中华人民共和国社会保险法》第七十四条，社会保险经办机构定期将个人权益记录寄送本人。"
        "如对记录有异议，请持本记录单到参保地社会保险经办机构核对。")
STATIC_TEXT = "".join([TITLE, *HEADER, *TRANSFER_HEADER, NOTE, *SCHEME_NAMES.values(),
                       "姓名公民身份号码参保地记录年度合计转移接续本年度无转移接续记录制表机构生成日期第页共年月日：（）*",
                       "0123456789.-,:;/()[] ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"])


@dataclass(frozen=True)
class Font:
    path: str
    number: int  # the face in a font collection (.ttc): Simplified Chinese


def find_font() -> Font:
    """The Noto Sans CJK SC face: by fontconfig, else at the paths Debian and Fedora install it."""
    candidates: list[str] = []
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(["fc-match", "-f", "%{file}", "Noto Sans CJK SC:style=Regular"],
                                 capture_output=True, text=True, timeout=10, check=False).stdout.strip()
            if out:
                candidates.append(out)
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.extend(KNOWN_FONTS)
    from fontTools.ttLib import TTFont

    for path in candidates:
        if not Path(path).is_file():
            continue
        for number in range(8) if path.endswith(".ttc") else (0,):
            try:
                face = TTFont(path, fontNumber=number, lazy=True)
            except (OSError, IndexError, ValueError, AssertionError):
                break
            name = str(face["name"].getDebugName(1) or "")
            if "CJK SC" in name or (name.endswith("SC") and "CJK" in name):
                return Font(path, number)
    raise UserError("no Chinese font for the statements: install the distribution's Noto CJK fonts "
                    "(apt-get install fonts-noto-cjk) so that fc-match finds \"Noto Sans CJK SC\"")


class FontCut:
    """Small fonts cut from the CJK face, one per batch, in a temporary folder of their own."""

    def __init__(self, font: Font, extra: str = "") -> None:
        self.font = font
        self.extra = extra  # text on every page beside the static text (the issuing agency)
        self.dir = Path(tempfile.mkdtemp(prefix="tierfed-font-"))
        self.n = 0

    def cut(self, texts: Iterable[str]) -> str:
        from fontTools import subset
        from fontTools.ttLib import TTFont

        chars = set(STATIC_TEXT) | set(self.extra)
        for t in texts:
            chars.update(t)
        face = TTFont(self.font.path, fontNumber=self.font.number)
        opts = subset.Options()
        opts.name_IDs = ["*"]
        opts.notdef_outline = True
        sub = subset.Subsetter(opts)
        sub.populate(text="".join(sorted(chars)))
        sub.subset(face)
        self.n += 1
        path = self.dir / f"cut{self.n}.ttf"
        to_truetype(face).save(str(path))
        return str(path)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def to_truetype(face: Any, max_err: float = 1.0) -> Any:
    """The font with its cubic (CFF) outlines made quadratic (TrueType ``glyf``), within
    ``max_err`` font units (of 1000 to the em: invisible). fpdf2 subsets and embeds a TrueType
    font three times as fast as a CFF one: once per batch here instead of once per file there
    (fontTools' own otf2ttf recipe)."""
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import newTable
    from fontTools.ttLib.tables._m_a_x_p import table__m_a_x_p

    order = face.getGlyphOrder()
    glyphs = face.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyphs)
        glyphs[name].draw(Cu2QuPen(pen, max_err, reverse_direction=True))
        glyf[name] = pen.glyph()
    face["glyf"] = glyf
    face["loca"] = newTable("loca")
    maxp = table__m_a_x_p()
    maxp.tableVersion = 0x00010000
    for attr in ("maxZones", "maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
                 "maxStackElements", "maxSizeOfInstructions", "maxComponentElements"):
        setattr(maxp, attr, 0)
    maxp.maxZones = 1
    maxp.numGlyphs = len(order)
    face["maxp"] = maxp
    face["head"].glyphDataFormat = 0
    post = face["post"]
    post.formatType = 2.0
    post.extraNames = []
    post.mapping = {}
    post.glyphOrder = order
    for tag in ("CFF ", "VORG"):
        if tag in face:
            del face[tag]
    face.sfntVersion = "\x00\x01\x00\x00"
    return face


def texts_of(statement: dict[str, Any]) -> list[str]:
    """The variable text of one statement (for cutting the font)."""
    p = statement["person"]
    out = [p["name"], p["region"]["name"]]
    for t in p["transfers"]:
        out.extend([t["from"]["name"], t["to"]["name"]])
    return out


def _money(v: str | Decimal) -> str:
    return f"{Decimal(v):.2f}"


def render(statements: list[dict[str, Any]], year: int, issuer: str, generated: str, font_file: str,
           font_number: int = 0) -> bytes:
    """One page (or more, for many transfers) per statement, all in one PDF."""
    from fpdf import FPDF
    from fpdf.fonts import TTFFont

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_creator("tierfed")
    pdf.set_title(f"{TITLE} {year}")
    if font_file.endswith(".ttc"):
        pdf.add_font("cjk", "", font_file, collection_font_number=font_number)
    else:
        pdf.add_font("cjk", "", font_file)
    # The embedded subset keeps the font's own bounding box (a valid one for any subset): computing
    # it again from every glyph's outline was two thirds of the time of a statement.
    font = pdf.fonts["cjk"]
    assert isinstance(font, TTFFont)
    font.ttfont.recalcBBoxes = False
    for st in statements:
        _page(pdf, st, year, issuer, generated)
    return bytes(pdf.output())


def _page(pdf: Any, st: dict[str, Any], year: int, issuer: str, generated: str) -> None:
    p = st["person"]
    pdf.add_page()
    pdf.set_font("cjk", size=17)
    pdf.cell(0, 12, f"{TITLE}（{year}年度）", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10.5)
    pdf.ln(2)
    pdf.cell(95, 7, f"姓名：{p['name']}")
    pdf.cell(0, 7, f"公民身份号码：{p['idNumber']}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(95, 7, f"参保地：{p['region']['name']}（{p['region']['code']}）")
    pdf.cell(0, 7, f"记录年度：{year}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (34, 22, 32, 32, 36, 30)
    _row(pdf, widths, HEADER, fill=True)
    rows = p["statement"]["schemes"]
    tot = [Decimal(0)] * 4
    for r in rows:
        vals = [r["contributionEmployer"], r["contributionIndividual"], r["individualAccount"], r["benefitsPaid"]]
        tot = [a + Decimal(v) for a, v in zip(tot, vals)]
        _row(pdf, widths, (SCHEME_NAMES[r["scheme"]], str(r["months"]), *(_money(v) for v in vals)))
    _row(pdf, widths, ("合计", "", *(_money(v) for v in tot)), fill=True)
    pdf.ln(5)
    pdf.set_font("cjk", size=12)
    pdf.cell(0, 8, "转移接续", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10.5)
    moved = [t for t in p["transfers"] if str(t["effectiveFrom"]).startswith(f"{year}-")]
    if not moved:
        pdf.cell(0, 7, "本年度无转移接续记录", new_x="LMARGIN", new_y="NEXT")
    else:
        tw = (24, 36, 36, 32, 28, 30)
        _row(pdf, tw, TRANSFER_HEADER, fill=True)
        for t in moved:
            for s in t["schemes"]:
                _row(pdf, tw, (t["effectiveFrom"], t["from"]["name"], t["to"]["name"], SCHEME_NAMES[s["scheme"]],
                               _money(s["individualAccount"]), _money(s["pooledFund"])))
    pdf.ln(6)
    pdf.set_font("cjk", size=9)
    pdf.multi_cell(0, 5.5, NOTE, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.cell(0, 6, f"制表机构：{issuer}    生成日期：{generated}", new_x="LMARGIN", new_y="NEXT")


def _row(pdf: Any, widths: tuple[int, ...], cells: tuple[str, ...], fill: bool = False) -> None:
    pdf.set_fill_color(232, 238, 246)
    for i, (w, text) in enumerate(zip(widths, cells)):
        pdf.cell(w, 8, text, border=1, align="L" if i == 0 else "R", fill=fill)
    pdf.ln(8)


def pdf_bytes_ok(data: bytes) -> bool:
    return data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]

