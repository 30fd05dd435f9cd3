# netwarden: multi-stage build. The runtime image holds the binary, the CA
# bundle and the example policy, runs as an unprivileged user, and needs no
# shell. Build: docker build -t netwarden .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/decide.rs \
    && cargo build --release --locked \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
COPY policies ./policies
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/netwarden /usr/local/bin/netwarden
COPY --from=build /src/policies /etc/netwarden/
# 65532 is distroless's "nonroot" user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/netwarden"]
CMD ["check", "--policy", "/etc/netwarden/example.yaml"]
