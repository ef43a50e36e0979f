"""cnnviz: train, inspect and explain classic convolutional networks. Never imports gradio (see cnnviz.ui)."""
__version__ = "0.1.0"
