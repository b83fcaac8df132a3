"""A font with Chinese glyphs for the PDF: a TrueType font of the machine, embedded, else STSong-Light.

reportlab embeds (a subset of) a TrueType font, so the archived PDF shows the same glyphs on any viewer.
Only TrueType outlines can be embedded: an OpenType/CFF font such as Noto Sans CJK cannot. Without any,
reportlab's built-in CID font `STSong-Light` names a font the viewer must supply (Adobe's Asian font
packs, poppler's substitutes): readable, but not the same everywhere. The image installs
fonts-wqy-zenhei (Dockerfile), as scripts/test does.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

log = logging.getLogger(__name__)

# TrueType fonts with Simplified Chinese glyphs, in order of preference (Debian package in the comment).
CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # fonts-wqy-zenhei
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),  # fonts-arphic-uming
)
EMBEDDED = "PumpWatchCJK"
FALLBACK = "STSong-Light"
_lock = threading.Lock()
_chosen: str | None = None


def register(candidates: tuple[Path, ...] = CANDIDATES) -> str:
    """Register the first usable font once and return its reportlab name."""
    global _chosen
    with _lock:
        if _chosen is None:
            _chosen = choose(candidates)
        return _chosen


def choose(candidates: tuple[Path, ...]) -> str:
    """Register the first of `candidates` that can be embedded, else the fallback; return its name."""
    for path in candidates:
        if not path.is_file():
            continue
        try:
            pdfmetrics.registerFont(TTFont(EMBEDDED, str(path), subfontIndex=0))
        except (TTFError, OSError) as err:
            log.warning("font %s cannot be embedded (%s); trying the next", path, err)
            continue
        return EMBEDDED
    log.warning("no TrueType font with Chinese glyphs found (install fonts-wqy-zenhei); the report PDF "
                "uses %s, which the viewer must supply", FALLBACK)
    pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK))
    return FALLBACK
