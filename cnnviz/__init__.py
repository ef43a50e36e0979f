"""cnnviz: train, inspect and explain classic convolutional networks. Never imports gradio (see cnnviz.ui).

The public API, imported lazily (a bare `import cnnviz` loads no torch, captum, matplotlib or gradio):

    import cnnviz
    cfg = cnnviz.TrainConfig(arch="lenet5", dataset="digits", epochs=1)
    for event in cnnviz.fit(cfg): print(event)
"""
from ._lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "get_model": ".models", "list_models": ".models", "load_dataset": ".data", "list_datasets": ".data",
    "TrainConfig": ".train.config", "fit": ".train.engine", "load_checkpoint": ".store.checkpoints",
    "grad_cam": ".explain.gradcam", "feature_maps": ".explain.maps", "attribute": ".explain.attributions",
    "summarize": ".lecture.summary", "predict_image": ".explain.predict", "load_image": ".images",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
