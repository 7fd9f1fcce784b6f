# Pipeline image for Kubeflow Pipelines v2 / Vertex AI Pipelines and Dataflow workers: the pinned
# stack plus this package, so user modules and custom components import by dotted path exactly
# as they do locally. Build and push (see docs/kubeflow.md):
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/petseg:TAG . && docker push REGION-docker.pkg.dev/PROJECT/REPO/petseg:TAG
FROM python:3.10.13-slim-bookworm

# TFT 1.16 and TFMA 0.47 need Keras 2 (tf_keras) in every process of every component.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /pipeline

# Dependencies first: this layer is rebuilt only when the pins change.
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY setup.py ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY modules/ modules/
COPY serving/ serving/
COPY local_runner.py kubeflow_runner.py ./
RUN pip install --no-deps .

# The TFX Kubeflow V2 compiler sets each task's command; this only makes `docker run IMAGE` useful.
CMD ["python", "kubeflow_runner.py", "--help"]
