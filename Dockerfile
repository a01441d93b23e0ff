# The image of the PodCIDRPool IPAM operator (charts/cni-migrate-ipam runs
# `python -m cni_migrate.actions.ipam_operator` in it). It carries the whole cni-migrate package, so the CLI works
# in it too:  docker run --rm IMAGE cni-migrate --help
#
#   docker build -t cni-migrate:0.1.0 .
#   helm install ... --set image.repository=<your-registry>/cni-migrate --set image.tag=0.1.0
FROM python:3.11-slim AS build
WORKDIR /build
# Exactly what the wheel needs (pyproject reads README.md as the long description); tests/unit/test_image.py
# builds the wheel from these COPY sources alone.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --disable-pip-version-check "setuptools>=77" wheel \
 && pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# The node agent (cni-migrate node ..., run by the pod node transport with nsenter into the host) drives these.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables ipset nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
# Compiled bytecode is kept: the operator starts (and takes over leadership) faster with it.
RUN pip install --no-cache-dir --disable-pip-version-check /wheels/*.whl \
 && rm -rf /wheels
# An unprivileged user with no home and no shell; the chart also sets runAsNonRoot and a read-only root filesystem.
USER 65532:65532
ENV PYTHONUNBUFFERED=1
EXPOSE 9977 9978 9979
CMD ["python", "-m", "cni_migrate.actions.ipam_operator"]
