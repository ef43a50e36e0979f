"""Opening the network: hooks, feature maps, filters, Grad-CAM, captum attributions, the sanity check, prediction,
and one receptive-field geometry tracer.

Names are exported lazily: importing this package imports none of its modules.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "model_input": ".preprocess",
    "LayerError": ".hooks",
    "capture": ".hooks",
    "model_lock": ".hooks",
    "output_shapes": ".hooks",
    "layer_geometry": ".geometry",
    "layer_fields": ".geometry",
    "Field": ".geometry",
    "ExplainError": ".layers",
    "conv_layers": ".layers",
    "default_layer": ".layers",
    "FeatureMaps": ".maps",
    "Filters": ".maps",
    "feature_maps": ".maps",
    "filters": ".maps",
    "CamResult": ".gradcam",
    "grad_cam": ".gradcam",
    "grad_cam_batch": ".gradcam",
    "cam_geometry": ".gradcam",
    "upsample_cam": ".gradcam",
    "Attribution": ".attributions",
    "METHODS": ".attributions",
    "attribute": ".attributions",
    "attribute_all": ".attributions",
    "sanity_check": ".sanity",
    "cascading_randomization": ".sanity",
    "Prediction": ".predict",
    "probabilities": ".predict",
    "predict_image": ".predict",
    "predict_tensor": ".predict",
    "parse_target": ".targets",
    "prepare": ".pipeline",
    "explain_image": ".pipeline",
    "Explanation": ".pipeline",
    "run_prediction": ".pipeline",
    "ResultCache": ".cache",
    "CachedExplainer": ".cache",
    "layer_choices": ".choices",
    "target_choices": ".choices",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
