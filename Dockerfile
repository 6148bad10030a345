# The mucomp app as a Hugging Face Docker Space (or any Docker host): Streamlit on port 8501,
# CPU-only torch, running as a non-root user with uid 1000 (what Spaces expect).
#
#   docker build -t mucomp . && docker run --rm -p 8501:8501 mucomp   # then open http://localhost:8501
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 user
# The real Fashion-MNIST (the four official IDX files in /usr/share/datasets/fashion-mnist), so the
# fmnist_cnn scenario runs without a network.
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dataset-fashion-mnist && rm -rf /var/lib/apt/lists/*
WORKDIR /home/user/app

# CPU wheels of torch and torchvision first (the default PyPI wheels bundle CUDA, ~5 GB), then
# mucomp and the rest of its dependencies from PyPI; torch is already satisfied by then.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision
COPY --chown=user:user pyproject.toml README.md LICENSE ./
COPY --chown=user:user mucomp ./mucomp
RUN pip install .

# The app itself: entry page, pages, Streamlit settings, the example custom method.
COPY --chown=user:user Home.py ./
COPY --chown=user:user pages ./pages
COPY --chown=user:user .streamlit ./.streamlit
COPY --chown=user:user examples ./examples

USER user
# Everything mucomp writes (trained references, experiments) lives in the user's home. On a
# Space this disk is not persistent: export experiments you want to keep (Screen > downloads).
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    MUCOMP_HOME=/home/user/mucomp-home \
    MUCOMP_DEVICE=cpu \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba
# The Space's proxy serves the app inside an iframe, where Streamlit's XSRF cookie does not reach
# the upload request: only XSRF protection is turned off here, for the Space. CORS stays on (the
# repository's .streamlit/config.toml keeps both on for every other use).
ENV STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION=false \
    STREAMLIT_SERVER_ENABLE_CORS=true
RUN mkdir -p "$MUCOMP_HOME"

EXPOSE 8501
# Under load (20 sessions) the health endpoint answered in up to 8 s: allow 25 s before a check fails.
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=25).read().strip() != b'ok')"

CMD ["streamlit", "run", "Home.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
