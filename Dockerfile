# The image helm/stemedb runs: stemedb-server, stemedb-gateway and the
# stemedb CLI on Debian 12, built with the same Debian packages as
# scripts/deps.sh. Not built in CI (no container runtime there); build with
#   docker build -t ghcr.io/stemedb/stemedb:0.1.0 .
FROM debian:12-slim AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config \
      libgrpc-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev protobuf-compiler-grpc \
      libwebsockets-dev libleveldb-dev libzstd-dev libsodium-dev libjansson-dev libcunit1-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
    && cmake --build /build -j"$(nproc)" --target stemedb-server stemedb-gateway stemedb \
    && install -D -m 0755 /build/service/stemedb-server /build/gateway/stemedb-gateway \
         /build/cli/stemedb -t /out/usr/local/bin \
    && install -D -m 0755 deploy/bin/stemedb-api -t /out/usr/local/bin \
    && install -D -m 0755 deploy/archive/archive-to-dir.sh deploy/archive/archive-to-s3.sh \
         deploy/backup/stemedb-backup deploy/backup/stemedb-verify -t /out/usr/local/lib/stemedb

FROM debian:12-slim
# Runtime libraries only (the -dev packages' shared objects), plus curl and
# zstd for the runbooks and the archive scripts.
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libgrpc29 libprotobuf-c1 libwebsockets17 libleveldb1d libzstd1 libsodium23 libjansson4 \
      ca-certificates curl zstd \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 stemedb \
    && useradd --system --uid 10001 --gid stemedb --home-dir /data --shell /usr/sbin/nologin stemedb \
    && install -d -o stemedb -g stemedb -m 0750 /data /etc/stemedb
COPY --from=build /out/ /
USER 10001:10001
ENV STEMEDB_DATA_DIR=/data
VOLUME /data
EXPOSE 18180/tcp 18181/tcp 18182/tcp 18183/udp
# One node in one container (stemedb-api runs both daemons); the Helm chart
# runs each in its own container instead.
ENTRYPOINT ["/usr/local/bin/stemedb-api"]
