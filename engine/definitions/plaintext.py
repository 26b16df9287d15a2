"""Plain text from Markdown tokens: the text/plain body of a letter.

Digital post sends this text as the text/plain version next to the HTML, so no Markdown
syntax may show through. The renderer walks markdown-it's syntax tree:

- headings and paragraphs are their text, soft and hard line breaks are new lines,
- emphasis, strong emphasis and inline code are just their text,
- a link is "text (url)", or the bare address when the text is the address itself,
- bullet lists are "- item" lines and ordered lists "1. item" lines,
- a table is aligned columns without pipes, and a header row of only empty cells is left out,
- block quotes keep "> " in front of each line.

Blocks are separated by one blank line, and no line ends in spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

COLUMN_GAP = "  "
THEMATIC_BREAK = "---"


def render_plain_text(tokens: Sequence[Token]) -> str:
    """Render tokens from `MarkdownIt.parse` as plain text ending in one newline."""
    return finish_plain_text(plain_blocks(tokens))


def plain_blocks(tokens: Sequence[Token]) -> str:
    """Render the top-level blocks of `tokens`, separated by one blank line, before the final clean-up.

    The blocks of a document split between top-level blocks give the same text when the
    parts' results are joined by a blank line, leaving out empty ones.
    """
    return _blocks(SyntaxTreeNode(tokens).children)


def finish_plain_text(text: str) -> str:
    """Strip the spaces that end lines and the blank lines around the text, and end it with one newline."""
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def _blocks(nodes: Sequence[SyntaxTreeNode], separator: str = "\n\n") -> str:
    rendered = (_block(node) for node in nodes)
    return separator.join(text for text in rendered if text)


def _block(node: SyntaxTreeNode) -> str:
    match node.type:
        case "heading" | "paragraph":
            return _inline_children(node)
        case "bullet_list" | "ordered_list":
            return _list(node)
        case "table":
            return _table(node)
        case "blockquote":
            return _prefix_lines(_blocks(node.children), "> ")
        case "fence" | "code_block" | "html_block":
            return node.content.rstrip("\n")
        case "hr":
            return THEMATIC_BREAK
        case _:
            return _blocks(node.children) if node.children else node.content


def _inline_children(node: SyntaxTreeNode) -> str:
    """Render the inline content of a heading, paragraph or table cell."""
    return "".join(_inline(child) for child in node.children)


def _inline(node: SyntaxTreeNode) -> str:
    match node.type:
        case "text" | "code_inline" | "html_inline":
            return node.content
        case "softbreak" | "hardbreak":
            return "\n"
        case "link":
            return _link(node)
        case _:
            # Inline containers, emphasis, strong emphasis and images, whose children are the alt text.
            return "".join(_inline(child) for child in node.children) if node.children else node.content


def _link(node: SyntaxTreeNode) -> str:
    text = "".join(_inline(child) for child in node.children)
    address = str(node.attrGet("href") or "")
    # An autolink such as <post@mst.dk> has its address as its text, so write the address once.
    if not address or text in (address, address.removeprefix("mailto:")):
        return text
    return f"{text} ({address})"


def _list(node: SyntaxTreeNode) -> str:
    # markdown-it hides the paragraphs of a tight list, whose items go on consecutive lines.
    paragraphs = [child for item in node.children for child in item.children if child.type == "paragraph"]
    tight = all(paragraph.hidden for paragraph in paragraphs)
    separator = "\n" if tight else "\n\n"

    start = int(node.attrGet("start") or 1) if node.type == "ordered_list" else 1
    items = []
    for number, item in enumerate(node.children, start=start):
        marker = f"{number}. " if node.type == "ordered_list" else "- "
        items.append(_hang(_blocks(item.children, separator), marker))
    return separator.join(items)


def _hang(text: str, marker: str) -> str:
    """Put `marker` before the first line and indent the other lines to line up under its text."""
    indent = " " * len(marker)
    lines = text.split("\n")
    rest = [indent + line if line else line for line in lines[1:]]
    return "\n".join([marker + lines[0], *rest])


def _prefix_lines(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in text.split("\n"))


def _table(node: SyntaxTreeNode) -> str:
    rows: list[list[str]] = []
    alignments: list[str] = []
    for section in node.children:
        for row_node in section.children:
            cells = [_inline_children(cell) for cell in row_node.children]
            if section.type == "thead":
                alignments = [str(cell.attrGet("style") or "") for cell in row_node.children]
                if not any(cells):
                    continue
            rows.append(cells)
    if not rows:
        return ""

    columns = max(len(row) for row in rows)
    widths = [max(len(row[column]) if column < len(row) else 0 for row in rows) for column in range(columns)]
    lines = []
    for row in rows:
        padded = [
            _align(row[column] if column < len(row) else "", widths[column], alignments, column)
            for column in range(columns)
        ]
        lines.append(COLUMN_GAP.join(padded).rstrip())
    return "\n".join(lines)


def _align(cell: str, width: int, alignments: Sequence[str], column: int) -> str:
    # markdown-it writes a delimiter row's ":--:" or "--:" as style="text-align:center|right".
    style = alignments[column] if column < len(alignments) else ""
    if style == "text-align:right":
        return cell.rjust(width)
    if style == "text-align:center":
        return cell.center(width)
    return cell.ljust(width)
