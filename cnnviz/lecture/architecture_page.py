"""The Architecture page of a model on a dataset: header text, totals cards, the layer diagram and the per-layer table,
all as text (markdown, HTML, table rows) ready for any front end."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from ..render.diagram import layer_diagram
from .overview import ArchitectureOverview, WidthCount, architecture_overview, width_counts

TABLE_COLUMNS = ("layer", "type", "output", "parameters", "FLOPs", "RF (px)", "jump")


@dataclass(frozen=True)
class ArchitecturePage:
    """What the Architecture tab shows: `rows` are the per-layer table, one value per TABLE_COLUMNS entry."""

    header: str  # markdown: title, year, paper, description, input shape
    totals: str  # HTML cards
    diagram: str  # HTML layer stack
    rows: tuple[tuple[str | int, ...], ...]


def human(n: float) -> str:
    """12,345 -> '12.3 k'; 4.2e9 -> '4.2 G'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def input_note(ov: ArchitectureOverview) -> str:
    """'Fashion-MNIST: 1×28×28, 10 classes', or why the dataset does not apply (ImageNet models)."""
    s, d = ov.shape, ov.dataset
    if ov.info.imagenet:  # torchvision's ImageNet models are shown as published
        return f"ImageNet input ({s.channels}×{s.size}×{s.size}, {s.num_classes} classes); the dataset choice does not apply"
    resized = f", resized from {d.size} px" if s.size != d.size else ""
    return f"{d.title}: {s.channels}×{s.size}×{s.size}{resized}, {s.num_classes} classes"


def totals_html(ov: ArchitectureOverview) -> str:
    """Four cards: parameters, FLOPs per image, layers with weights, largest receptive field."""
    params, flops, rf = ov.summary.total_params, ov.summary.total_flops, ov.largest_rf
    cells = [("parameters", f"{params:,}", f"{params * 4 / 1e6:.2f} MB as float32"),
             ("FLOPs per image", human(flops), f"{flops:,}"),
             ("layers with weights", f"{ov.convs + ov.fully_connected}",
              f"{ov.convs} conv, {ov.fully_connected} fully connected"),
             ("largest receptive field", f"{rf} px" if rf else "–", "of the last conv/pool layer")]
    inner = "".join(f"<div class='total'><div class='total-value'>{v}</div><div class='total-label'>{k}</div>"
                    f"<div class='total-sub'>{s}</div></div>" for k, v, s in cells)
    return f"<div class='totals'>{inner}</div>"


def table_rows(ov: ArchitectureOverview) -> tuple[tuple[str | int, ...], ...]:
    """One row per leaf layer: name, type, output C×h×w, parameters, FLOPs, receptive field, jump."""
    return tuple((r.name, r.type, "×".join(map(str, r.out_shape[1:])), f"{r.params:,}", human(r.flops),
                  r.rf if r.rf is not None else "", r.jump if r.jump is not None else "") for r in ov.summary.rows)


def widths_table(arch: str, counts: tuple[WidthCount, ...]) -> str:
    """Markdown: the full-width network beside its scaled variants (this one in bold), so the saving is plain."""
    if not counts:
        return ""
    full = counts[0]
    lines = ["**Full width and scaled** (same layers, kernels, strides and shortcuts; fewer channels):", "",
             "| network | width | parameters | FLOPs per image |", "|---|---|---|---|"]
    for c in counts:
        share = "" if c is full else f" (1/{full.params / max(1, c.params):.0f} of full)"
        name = f"**{c.title}**" if c.arch == arch else c.title
        lines.append(f"| {name} | {c.width} | {c.params:,}{share} | {human(c.flops)} |")
    return "\n".join(lines)


@functools.lru_cache(maxsize=16)
def architecture_page(arch: str, dataset: str) -> ArchitecturePage:
    """Header, totals, diagram and table for `arch` fed `dataset`'s images; cached per pair."""
    ov = architecture_overview(arch, dataset)
    info = ov.info
    header = f"### {info.title} ({info.year})\n*{info.paper}*\n\n{info.description}\n\n**Input:** {input_note(ov)}"
    widths = widths_table(arch, width_counts(arch, dataset))
    header += f"\n\n{widths}" if widths else ""
    return ArchitecturePage(header, totals_html(ov), layer_diagram(ov.model, ov.summary), table_rows(ov))


__all__ = ["TABLE_COLUMNS", "ArchitecturePage", "architecture_page", "human", "input_note", "table_rows", "totals_html",
           "widths_table"]
