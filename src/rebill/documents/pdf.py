"""A document as a PDF (fpdf2), in the bundled fonts, with text that ``pdftotext`` reads back.

DejaVu Sans prints Latin, Greek and Cyrillic; a character it lacks (Chinese,
Japanese, Korean) falls back to Droid Sans Fallback. That font is 4 MB and
takes most of a second to load, so it is added only to the documents whose
text needs it. Either font is embedded as a subset of the glyphs used, with
its Unicode map, so the PDF stays small and its text can be searched and
copied.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import FontFace

from rebill.documents.view import DocumentView, Party

FONTS = Path(__file__).parent / "fonts"
FAMILY = "DejaVuSans"
REGULAR = FONTS / "DejaVuSans.ttf"
BOLD = FONTS / "DejaVuSans-Bold.ttf"
FALLBACK = "DroidSansFallback"
FALLBACK_FILE = FONTS / "DroidSansFallbackFull.ttf"

INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
STAMP_COLORS = {"PAID": (21, 128, 61), "VOID": (185, 28, 28), "DRAFT": (108, 117, 125)}

MARGIN = 18.0
LINE = 5.0


@functools.cache
def _printable() -> frozenset[int]:
    """The code points both DejaVu faces have a glyph for (read once per process)."""
    faces = [set(TTFont(path, lazy=True).getBestCmap()) for path in (REGULAR, BOLD)]
    return frozenset(faces[0] & faces[1])


def needs_fallback(text: str) -> bool:
    printable = _printable()
    return any(ord(c) not in printable for c in text if not c.isspace())


class _Sheet(FPDF):
    """A4 pages with the document's name and the page number at the foot."""

    def __init__(self, view: DocumentView) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.view = view

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 4, f"{self.view.title} {self.view.number} · Page {self.page_no()} of {{nb}}", align="C")


def render_pdf(view: DocumentView, *, created_at: datetime | None = None) -> bytes:
    """The PDF of ``view``; ``created_at`` (when the document was made) dates the file, so it is the same every time."""
    pdf = _Sheet(view)
    pdf.add_font(FAMILY, "", REGULAR)
    pdf.add_font(FAMILY, "B", BOLD)
    if needs_fallback(view.text()):
        pdf.add_font(FALLBACK, "", FALLBACK_FILE)
        pdf.set_fallback_fonts([FALLBACK], exact_match=False)
    pdf.set_title(f"{view.title} {view.number}")
    if view.seller.name:
        pdf.set_author(view.seller.name)
    pdf.set_creator("rebill")
    pdf.set_lang("en")
    if created_at is not None:
        pdf.set_creation_date(created_at)
    pdf.set_margins(MARGIN, 16, MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    _heading(pdf, view)
    _parties_and_facts(pdf, view)
    if view.memo:
        _memo(pdf, view.memo)
    _lines(pdf, view)
    _totals(pdf, view)
    return bytes(pdf.output())


def _heading(pdf: FPDF, view: DocumentView) -> None:
    pdf.set_text_color(*INK)
    pdf.set_font(FAMILY, "B", 20)
    pdf.cell(110, 10, view.title)
    if view.stamp:
        color = STAMP_COLORS.get(view.stamp, INK)
        pdf.set_font(FAMILY, "B", 16)
        pdf.set_text_color(*color)
        pdf.set_draw_color(*color)
        pdf.set_line_width(0.8)
        pdf.set_x(pdf.w - MARGIN - 42)
        pdf.cell(42, 10, view.stamp, border=1, align="C")
        pdf.set_text_color(*INK)
    pdf.ln(16)


def _party(pdf: FPDF, party: Party, x: float, width: float) -> None:
    pdf.set_x(x)
    pdf.set_font(FAMILY, "B", 8)
    pdf.set_text_color(*MUTED)
    pdf.cell(width, LINE, party.heading.upper(), new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(*INK)
    for n, line in enumerate(party.lines):
        pdf.set_font(FAMILY, "B" if n == 0 else "", 10 if n == 0 else 9)
        pdf.multi_cell(width, LINE, line, new_x="LEFT", new_y="NEXT")


def _parties_and_facts(pdf: FPDF, view: DocumentView) -> None:
    """The seller and the customer on the left; number, dates, purchase order and status on the right."""
    top = pdf.get_y()
    _party(pdf, view.seller, MARGIN, 84)
    pdf.ln(4)
    _party(pdf, view.customer, MARGIN, 84)
    left_end = pdf.get_y()
    pdf.set_y(top)
    x, label_width, value_width = 108.0, 30.0, pdf.w - MARGIN - 108.0 - 30.0
    for label, value in view.facts:
        pdf.set_x(x)
        pdf.set_font(FAMILY, "", 9)
        pdf.set_text_color(*MUTED)
        pdf.cell(label_width, LINE, label)
        pdf.set_text_color(*INK)
        pdf.set_font(FAMILY, "B" if label == "Number" else "", 9)
        # Left-aligned: a long value (a credit note's reason) wraps without stretched spaces.
        pdf.multi_cell(value_width, LINE, value, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(left_end, pdf.get_y()) + 6)


def _memo(pdf: FPDF, memo: str) -> None:
    pdf.set_font(FAMILY, "B", 8)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, LINE, "MEMO", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*INK)
    pdf.set_font(FAMILY, "", 9)
    pdf.multi_cell(0, LINE, memo, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _lines(pdf: FPDF, view: DocumentView) -> None:
    pdf.set_font(FAMILY, "", 9)
    pdf.set_text_color(*INK)
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    headings = ("Description", "Period", "Qty", "Unit price", f"Amount ({view.currency})")
    aligns = ("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")
    with pdf.table(
        col_widths=(36, 30, 8, 16, 20),
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD", color=MUTED),
        line_height=LINE,
        padding=(1.2, 1.5),
        width=pdf.epw,
    ) as table:
        heading = table.row()
        for text, align in zip(headings, aligns, strict=True):
            heading.cell(text, align=align)
        for line in view.lines:
            row = table.row()
            values = (line.description, line.period, line.quantity, line.unit_price, line.amount)
            for text, align in zip(values, aligns, strict=True):
                row.cell(text, align=align)
    pdf.ln(4)


def _totals(pdf: FPDF, view: DocumentView) -> None:
    label_width, amount_width = 50.0, 30.0
    x = pdf.w - MARGIN - label_width - amount_width
    for total in view.totals:
        if pdf.will_page_break(LINE + 1):
            pdf.add_page()
        if total.strong:
            pdf.set_draw_color(*RULE)
            pdf.line(x, pdf.get_y(), pdf.w - MARGIN, pdf.get_y())
        pdf.set_x(x)
        pdf.set_font(FAMILY, "B" if total.strong else "", 10 if total.strong else 9)
        pdf.cell(label_width, LINE + 1, total.label)
        pdf.cell(amount_width, LINE + 1, total.amount, align="R", new_x="LMARGIN", new_y="NEXT")
