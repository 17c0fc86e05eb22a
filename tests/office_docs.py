"""Office documents written by hand, as small as LibreOffice still reads them.

A .pptx and an .odp whose slides have a title and a solid background colour, and a .docx
of paragraphs: enough to check conversion, page titles and what a panel shows.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

_P = (
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
)
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'

Slide = tuple[str, str]
"""A slide's title and its background colour as ``RRGGBB``."""


def make_pptx(
    path: Path, slides: Sequence[Slide], *, hidden: Sequence[int] = (), body: str = ""
) -> Path:
    """Write a .pptx of ``slides``; the 0-based slides in ``hidden`` are hidden; ``body``,
    when given, is a text box under each title."""
    n = len(slides)
    overrides = "".join(
        f'<Override PartName="/ppt/slides/slide{i + 1}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.presentationml.slide+xml"/>'
        for i in range(n)
    )
    content_types = (
        f'{_XML}<Types xmlns="{_CT}">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/ppt/presentation.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.presentationml.presentation.main+xml"/>'
        f"{overrides}</Types>"
    )
    rels = (
        f'{_XML}<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
        f'Type="{_REL}/officeDocument" Target="ppt/presentation.xml"/></Relationships>'
    )
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 1}"/>' for i in range(n))
    presentation = (
        f"{_XML}<p:presentation {_P}><p:sldIdLst>{ids}</p:sldIdLst>"
        '<p:sldSz cx="9144000" cy="5143500"/><p:notesSz cx="6858000" cy="9144000"/>'
        "</p:presentation>"
    )
    slide_rels = "".join(
        f'<Relationship Id="rId{i + 1}" Type="{_REL}/slide" Target="slides/slide{i + 1}.xml"/>'
        for i in range(n)
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", rels)
        z.writestr("ppt/presentation.xml", presentation)
        z.writestr(
            "ppt/_rels/presentation.xml.rels",
            f'{_XML}<Relationships xmlns="{_RELS}">{slide_rels}</Relationships>',
        )
        for i, (title, colour) in enumerate(slides):
            show = ' show="0"' if i in hidden else ""
            z.writestr(
                f"ppt/slides/slide{i + 1}.xml",
                f"{_XML}<p:sld {_P}{show}><p:cSld><p:bg><p:bgPr><a:solidFill>"
                f'<a:srgbClr val="{colour}"/></a:solidFill><a:effectLst/></p:bgPr></p:bg>'
                '<p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/>'
                '</p:nvGrpSpPr><p:grpSpPr/><p:sp><p:nvSpPr><p:cNvPr id="2" name="Title"/>'
                '<p:cNvSpPr/><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:spPr>'
                '<a:xfrm><a:off x="457200" y="228600"/><a:ext cx="8229600" cy="857250"/>'
                '</a:xfrm></p:spPr><p:txBody><a:bodyPr/><a:p><a:r><a:rPr lang="ru-RU"/>'
                f"<a:t>{escape(title)}</a:t></a:r></a:p></p:txBody></p:sp>{_body(body)}"
                "</p:spTree></p:cSld></p:sld>",
            )
    return path


def _body(text: str) -> str:
    if not text:
        return ""
    paragraphs = "".join(
        f'<a:p><a:r><a:rPr lang="ru-RU" sz="2000"/><a:t>{escape(line)}</a:t></a:r></a:p>'
        for line in text.splitlines()
    )
    return (
        '<p:sp><p:nvSpPr><p:cNvPr id="3" name="Body"/><p:cNvSpPr txBox="1"/><p:nvPr/>'
        '</p:nvSpPr><p:spPr><a:xfrm><a:off x="457200" y="1200000"/><a:ext cx="8229600" '
        'cy="3500000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
        f"<p:txBody><a:bodyPr/>{paragraphs}</p:txBody></p:sp>"
    )


def make_odp(path: Path, slides: Sequence[Slide]) -> Path:
    """Write an .odp of ``slides`` (titles in ``presentation:class="title"`` frames)."""
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
        'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
        'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
        'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
        'office:version="1.3"'
    )
    styles = "".join(
        f'<style:style style:name="bg{i}" style:family="drawing-page">'
        f'<style:drawing-page-properties draw:fill="solid" draw:fill-color="#{colour}"/>'
        "</style:style>"
        for i, (_, colour) in enumerate(slides)
    )
    pages = "".join(
        f'<draw:page draw:name="s{i}" draw:style-name="bg{i}" draw:master-page-name="M">'
        '<draw:frame presentation:class="title" svg:x="2cm" svg:y="1cm" svg:width="24cm" '
        f'svg:height="3cm"><draw:text-box><text:p>{escape(title)}</text:p></draw:text-box>'
        "</draw:frame></draw:page>"
        for i, (title, _) in enumerate(slides)
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns}>'
        f"<office:automatic-styles>{styles}</office:automatic-styles><office:body>"
        f"<office:presentation>{pages}</office:presentation></office:body>"
        "</office:document-content>"
    )
    page_styles = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-styles {ns}>'
        '<office:automatic-styles><style:page-layout style:name="PM"><style:page-layout-'
        'properties fo:page-width="28cm" fo:page-height="15.75cm"/></style:page-layout>'
        '</office:automatic-styles><office:master-styles><style:master-page style:name="M" '
        'style:page-layout-name="PM"/></office:master-styles></office:document-styles>'
    )
    mime = "application/vnd.oasis.opendocument.presentation"
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:'
        'names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="styles.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), mime)  # first and stored, as ODF asks
        z.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        z.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        z.writestr("styles.xml", page_styles, zipfile.ZIP_DEFLATED)
    return path


def make_docx(path: Path, paragraphs: Sequence[str]) -> Path:
    """Write a .docx of ``paragraphs``."""
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            f'{_XML}<Types xmlns="{_CT}"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
            'ContentType="application/xml"/><Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.'
            'document.main+xml"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            f'{_XML}<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
            f'Type="{_REL}/officeDocument" Target="word/document.xml"/></Relationships>',
        )
        z.writestr(
            "word/document.xml", f"{_XML}<w:document {w}><w:body>{body}</w:body></w:document>"
        )
    return path
