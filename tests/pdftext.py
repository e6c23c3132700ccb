"""A PDF's text as ``pdftotext -layout`` (Debian's poppler-utils) reads it: what a customer could copy from it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def pdf_text(pdf: bytes) -> str:
    """The text of ``pdf``; skips the test where pdftotext is missing, unless CI requires it (REBILL_REQUIRE_BROWSER)."""
    if shutil.which("pdftotext") is None and not os.environ.get("REBILL_REQUIRE_BROWSER"):
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    done = subprocess.run(
        ["pdftotext", "-layout", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return done.stdout.decode()
