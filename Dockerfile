# syntax=docker/dockerfile:1
# netwarden as a sidecar image. Multi-stage: build with cargo, run from a
# distroless base (no shell, no package manager) as an unprivileged user.
#
#   docker build -t netwarden .
#   docker run --rm -p 8080:8080 \
#     -e NETWARDEN_UPSTREAM=http://console:3000 netwarden
#   # your own policy: a directory holding policy.yaml (and the files it
#   # names), mounted over the built-in one
#   docker run --rm -p 8080:8080 -v "$PWD/my-policy:/etc/netwarden:ro" \
#     -e NETWARDEN_UPSTREAM=http://console:3000 netwarden
#
# The policy is read from /etc/netwarden/policy.yaml (mount a ConfigMap or a
# directory with a policy.yaml there; the repository's policies/ has none). The built-in one listens on 8080 with the admin
# listener on 127.0.0.1:9901 (enough for the HEALTHCHECK); a Kubernetes
# policy sets server.admin: 0.0.0.0:9901 for the kubelet's probes.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# What cargo needs to build the binary: the sources, the policies the demo
# embeds, and benches/ (cargo refuses a manifest whose declared benches are
# missing). .ci/run compiles a copy of exactly this context.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY policies ./policies
# BuildKit cache mounts keep the registry and compiled dependencies between
# builds, so a source edit rebuilds only netwarden.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin netwarden \
    && cp target/release/netwarden /usr/local/bin/netwarden

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/netwarden /usr/local/bin/netwarden
COPY --from=build /src/policies/example.yaml /etc/netwarden/policy.yaml
COPY --from=build /src/policies/networks /etc/netwarden/networks
# Listeners and the admin address come from the policy (server.listen,
# server.admin), never from the image: a variable set here would silently
# override a ConfigMap's. (A flag or NETWARDEN_* variable that does override
# the policy is logged as setting_overridden, with both values.)
ENV NETWARDEN_POLICY=/etc/netwarden/policy.yaml \
    NETWARDEN_LOG_FORMAT=json
# 8080: plain HTTP, 8443: HTTPS (server.tls_listen and server.tls), 9901: admin.
EXPOSE 8080 8443 9901
# 65532 is distroless's "nonroot" user.
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/netwarden", "health", "--admin", "127.0.0.1:9901"]
ENTRYPOINT ["/usr/local/bin/netwarden"]
CMD ["serve"]
