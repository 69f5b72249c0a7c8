"""Making citizen HTML inert before anyone sees it (nh3, a strict allow-list).

What a stored ``Message.html`` can contain: text formatting, lists, tables, quotes, links
(http, https, mailto, tel only; ``rel="noopener noreferrer"``, new tab) and images that load
nothing by themselves:

* a remote image (``http(s)://``) keeps its address in ``data-src`` and has no ``src``: no
  tracking pixel fires when an agent opens the mail; the console reveals it on request with
  :func:`render_email_html` (``reveal_remote_images=True``);
* an inline image (``cid:``) becomes ``data-attachment="N"``, the index of the stored
  attachment in ``Message.attachments``; :func:`render_email_html` turns it into a URL the
  console serves.

Everything else goes: scripts, ``<style>``, ``style=`` and ``class=`` (CSS overlays and
``url()`` tricks), event handlers (``onerror``, ``onload``...), ``<base>``, ``<meta>``, forms
and their fields, ``<svg>`` and ``<math>`` with their content, frames, objects, comments,
``javascript:`` / ``data:`` / ``vbscript:`` and relative URLs.

The rewriting of images happens between two nh3 passes, so the last word is always nh3's.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
# Removed together with everything inside them.
DROPPED_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "title",
        "head",
        "template",
        "noscript",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "svg",
        "math",
        "textarea",
        "select",
        "button",
        "xmp",
        "noembed",
        "noframes",
        "plaintext",
    }
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"lang", "dir"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height", "data-src", "data-attachment"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
}
LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
REMOTE_IMAGE_SCHEMES = ("http://", "https://")
_DIGITS = re.compile(r"^\d{1,4}$")
_DIR_VALUES = {"ltr", "rtl", "auto"}


def _attribute_filter(allowed_img_src: frozenset[str]) -> Callable[[str, str, str], str | None]:
    def check(tag: str, attribute: str, value: str) -> str | None:
        value = value.strip()
        lowered = value.lower()
        if attribute == "href":
            return value if lowered.startswith(LINK_SCHEMES) else None
        if attribute == "src":
            # Only the URLs render_email_html put there on purpose; stored HTML has no src.
            return value if value in allowed_img_src else None
        if attribute == "data-src":
            return value if lowered.startswith(REMOTE_IMAGE_SCHEMES) else None
        if attribute in {"data-attachment", "width", "height", "colspan", "rowspan", "start"}:
            return value if _DIGITS.match(value) else None
        if attribute == "dir":
            return lowered if lowered in _DIR_VALUES else None
        if attribute == "lang":
            return value if re.match(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", value) else None
        return value[:500]

    return check


def _clean(
    markup: str, allowed_img_src: frozenset[str] = frozenset(), *, relative: bool = False
) -> str:
    return nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter(allowed_img_src),
        strip_comments=True,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes={"http", "https", "mailto", "tel"},
        # Relative URLs only for the attachment URLs render_email_html allows (links need a
        # scheme: see the attribute filter).
        url_relative="pass_through" if relative else "deny",
    )


class _ImageRewriter(HTMLParser):
    """Re-emits nh3's (well-formed) output, changing only the attributes of ``<img>``."""

    def __init__(self, rewrite: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> None:
        super().__init__(convert_charrefs=True)
        self.rewrite = rewrite
        self.out: list[str] = []

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]]) -> str:
        pairs = [(name, value or "") for name, value in attrs]
        if tag == "img":
            pairs = self.rewrite(pairs)
        rendered = "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in pairs)
        return f"<{tag}{rendered}>"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))


def _rewrite_images(
    markup: str, rewrite: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]
) -> str:
    parser = _ImageRewriter(rewrite)
    parser.feed(markup)
    parser.close()
    return "".join(parser.out)


def sanitize_email_html(markup: str, *, content_ids: dict[str, int] | None = None) -> str:
    """The inert HTML to store for a received message.

    ``content_ids`` maps an inline image's Content-ID (without brackets) to the index of its
    stored attachment.
    """
    if not markup.strip():
        return ""
    cids = content_ids or {}

    def rewrite(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        kept = [(n, v) for n, v in pairs if n not in {"src", "data-src", "data-attachment"}]
        src = next((v.strip() for n, v in pairs if n == "src"), "")
        if src.lower().startswith(REMOTE_IMAGE_SCHEMES):
            kept.append(("data-src", src))
        elif src.lower().startswith("cid:"):
            index = cids.get(src[4:].strip("<> "))
            if index is not None:
                kept.append(("data-attachment", str(index)))
        return kept

    # Pass 1 keeps an image's src when it is remote or cid: so the rewrite can see it.
    first = nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_first_pass_filter,
        strip_comments=True,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        url_relative="deny",
    )
    return _clean(_rewrite_images(first, rewrite)).strip()


def _first_pass_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        lowered = value.strip().lower()
        return value if lowered.startswith((*REMOTE_IMAGE_SCHEMES, "cid:")) else None
    if attribute in {"data-src", "data-attachment"}:
        return None  # only our rewrite sets these
    return _attribute_filter(frozenset())(tag, attribute, value)


def render_email_html(
    stored_html: str,
    *,
    reveal_remote_images: bool = False,
    attachment_url: Callable[[int], str | None] | None = None,
) -> str:
    """HTML for the console, from a stored (already inert) ``Message.html``.

    Remote images stay blocked unless ``reveal_remote_images`` (the agent asked for them);
    inline images get ``src=attachment_url(index)`` when the console gives a URL for them. The
    result passes through nh3 again, allowing exactly those image URLs.
    """
    if not stored_html.strip():
        return ""
    allowed: set[str] = set()

    def rewrite(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        values = dict(pairs)
        src: str | None = None
        remote = values.get("data-src", "")
        if reveal_remote_images and remote.lower().startswith(REMOTE_IMAGE_SCHEMES):
            src = remote
        index = values.get("data-attachment", "")
        if attachment_url is not None and _DIGITS.match(index):
            src = attachment_url(int(index)) or None
        kept = [(n, v) for n, v in pairs if n != "src"]
        if src:
            allowed.add(src)
            kept.append(("src", src))
        return kept

    rewritten = _rewrite_images(stored_html, rewrite)
    return _clean(rewritten, frozenset(allowed), relative=True).strip()


def plain_text_to_html(text: str) -> str:
    """Escaped paragraphs for text an agent typed (our outbound HTML part)."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "".join(
        "<p>" + html.escape(paragraph).replace("\n", "<br>") + "</p>" for paragraph in paragraphs
    )
