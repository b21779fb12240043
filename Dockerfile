# weft's image, built from source, for those who can pull base images from a
# registry. Without one (or to reuse a binary already built), use
# `weft image build`, which needs only a local Docker engine.
#
#   docker build -t weft:0.1.0 .
#
# Build stage: a static binary (crt-static on the gnu target), stripped.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release -p weft --target x86_64-unknown-linux-gnu \
 && strip target/x86_64-unknown-linux-gnu/release/weft \
 && mkdir -p /out/etc /out/tmp /home-weft \
 && printf 'root:x:0:0:root:/:/nonexistent\nweft:x:10001:10001:weft:/var/weft:/nonexistent\n' > /out/etc/passwd \
 && printf 'root:x:0:\nweft:x:10001:\n' > /out/etc/group

# Runtime: the binary, CA certificates and a non-root user; nothing else.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ /
COPY --from=build --chown=10001:10001 /home-weft /var/weft
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/weft /usr/local/bin/weft
LABEL org.opencontainers.image.title=weft
USER 10001:10001
WORKDIR /var/weft
ENV HOME=/var/weft
ENTRYPOINT ["/usr/local/bin/weft"]
