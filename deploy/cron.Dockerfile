# The Spin CLI with the cron trigger plugin, for deploy/cron-runner.yaml.
#   docker build -f deploy/cron.Dockerfile -t ghcr.io/<org>/tracking-backbone-cron:4.0.2 .
FROM debian:bookworm-slim
ARG SPIN_VERSION=v4.0.2
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL "https://github.com/spinframework/spin/releases/download/${SPIN_VERSION}/spin-${SPIN_VERSION}-static-linux-amd64.tar.gz" \
    | tar -xz -C /usr/local/bin spin \
 && spin plugins update && spin plugins install trigger-cron --yes
ENTRYPOINT ["spin"]
