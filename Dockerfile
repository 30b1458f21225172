# The MedLedger node image: medledgerd and the medledger CLI on Debian 12.
#   docker build -t medledger .
# Build stage: Swift 6.2 on Debian bookworm (the resolved packages need tools version 6.2), and every
# system library Package.swift links, from Debian: RocksDB, OpenSSL's libcrypto, libsecp256k1, GMP, jemalloc,
# libraft and libuv.
# (DeploymentFilesTests checks both against Package.swift and the checked-out packages.)
FROM swift:6.2-bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librocksdb-dev libssl-dev libsecp256k1-dev libgmp-dev libjemalloc-dev libraft-dev libuv1-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product medledgerd \
    && swift build -c release --static-swift-stdlib --product medledger \
    && cp "$(swift build -c release --show-bin-path)/medledgerd" "$(swift build -c release --show-bin-path)/medledger" /usr/local/bin/

# Runtime stage: only the shared libraries the binaries need.
FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librocksdb7.8 libssl3 libsecp256k1-1 libgmp10 libjemalloc2 libraft2 libuv1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data medledger && mkdir -p /data && chown medledger /data
COPY --from=build /usr/local/bin/medledgerd /usr/local/bin/medledger /usr/local/bin/
USER medledger
WORKDIR /data
VOLUME ["/data"]
# node.yaml lives in the mounted volume (written by `medledger ca init` / `org admit`).
ENTRYPOINT ["medledgerd"]
CMD ["--config", "/data/node.yaml"]
