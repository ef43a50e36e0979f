"""Numbers -> pictures: grids, overlays, matplotlib figures, architecture diagrams, lecture pictures.

Names are exported lazily: importing this package imports none of its modules.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "colorize": ".pictures",
    "overlay": ".pictures",
    "upscale": ".pictures",
    "cam_image": ".pictures",
    "feature_grid": ".pictures",
    "filter_grid": ".pictures",
    "with_colorbar": ".pictures",
    "lut": ".pictures",
    "methods_figure": ".figures",
    "confusion_figure": ".figures",
    "curves_figure": ".figures",
    "figure_to_png": ".figures",
    "figure_to_image": ".figures",
    "layer_diagram": ".diagram",
    "animated_gif": ".animation",
    "forward_pass_picture": ".forward_pass_picture",
    "forward_pass_gif": ".forward_pass_picture",
    "highlight": ".forward_pass_picture",
    "unit_picture": ".unit_picture",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
