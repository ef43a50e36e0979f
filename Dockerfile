# cnnviz as a container image: the app on port 7860, user data (runs, saved checkpoints, datasets) in /data.
#   docker build -t cnnviz .                                                     # torch from PyPI (CUDA, for a GPU host)
#   docker build -t cnnviz --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .   # CPU-only, a far smaller image
#   docker run -p 7860:7860 -v cnnviz-data:/data cnnviz                          # add --gpus all on a GPU host
# Caps and logins come from the environment (CNNVIZ_MAX_EPOCHS, CNNVIZ_AUTH_FILE, ...: see the README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=Agg CNNVIZ_HOME=/data TORCH_HOME=/data/torch

# Real Fashion-MNIST offline (Debian's package, MIT licence); without it the dataset downloads on first use.
ARG FASHION_MNIST=1
RUN if [ "$FASHION_MNIST" = 1 ]; then \
      apt-get update -qq && (apt-get install -y -qq --no-install-recommends dataset-fashion-mnist \
        || echo "dataset-fashion-mnist is not in this Debian release: Fashion-MNIST will download on first use") \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# Dependencies first (a layer that survives code changes), every version from the lock file.
ARG TORCH_INDEX=
WORKDIR /opt/cnnviz
COPY requirements.txt requirements-lock.txt ./
# TORCH_INDEX as an extra index: its torch 2.14.1+cpu matches the lock's ==2.14.1 and sorts above PyPI's build.
RUN pip install -q -r requirements.txt -c requirements-lock.txt ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
      setuptools  # setuptools: builds cnnviz below without fetching it again

# The package itself (shipped checkpoints, examples and data travel inside it as package data).
COPY pyproject.toml README.md ./
COPY cnnviz ./cnnviz
RUN pip install -q --no-deps --no-build-isolation . && rm -rf /opt/cnnviz/build /opt/cnnviz/cnnviz

RUN useradd --create-home --uid 1000 cnnviz && mkdir -p /data && chown cnnviz /data
USER cnnviz
WORKDIR /data
VOLUME /data
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=4)"
CMD ["cnnviz", "serve", "--host", "0.0.0.0"]
